/**
 * Subject matching at the type level, so a wildcard handler's payload is the union of the
 * payloads of the known subjects its pattern matches. Mirrors NATS: `*` is one token, `>` one
 * or more at the end.
 */
type Tokens<S extends string> = S extends `${infer Head}.${infer Rest}` ? [Head, ...Tokens<Rest>] : [S];

type MatchTokens<Subject extends string[], Pattern extends string[]> = Pattern extends ['>']
  ? Subject extends [string, ...string[]]
    ? true
    : false
  : Pattern extends [infer P extends string, ...infer PatternRest extends string[]]
    ? Subject extends [infer S extends string, ...infer SubjectRest extends string[]]
      ? P extends '*' | S
        ? MatchTokens<SubjectRest, PatternRest>
        : false
      : false
    : Subject extends []
      ? true
      : false;

/** The known subjects of `Subjects` that `Pattern` matches (`never` when none does). */
export type MatchingSubjects<Subjects extends string, Pattern extends string> = Subjects extends string
  ? MatchTokens<Tokens<Subjects>, Tokens<Pattern>> extends true
    ? Subjects
    : never
  : never;
