/**
 * `$n` placeholders replaced by SQL literals, for a statement sent with the simple-query protocol
 * (which takes several statements in one round trip, but no parameters). Only strings, finite
 * numbers, null and arrays of strings (`ARRAY[...]`, which the statement casts, e.g. `$2::text[]`)
 * are written; anything else gives undefined and the caller keeps its
 * parameterized statement. Strings go as `E'...'` with backslashes and quotes doubled, which
 * reads back the same whatever `standard_conforming_strings` is.
 */
export function inlineParameters(sql: string, params: readonly unknown[]): string | undefined {
  const literals: string[] = [];
  for (const value of params) {
    if (value === null) literals.push('NULL');
    else if (typeof value === 'number' && Number.isFinite(value)) literals.push(String(value));
    else if (typeof value === 'string') {
      const literal = stringLiteral(value);
      if (literal === undefined) return undefined;
      literals.push(literal);
    } else if (Array.isArray(value) && value.every((item) => typeof item === 'string')) {
      const items = value.map(stringLiteral);
      if (items.includes(undefined)) return undefined;
      // An empty ARRAY[] has no type; '{}' takes the statement's cast.
      literals.push(items.length === 0 ? `'{}'` : `ARRAY[${items.join(', ')}]`);
    } else return undefined;
  }
  let unknownPlaceholder = false;
  const text = sql.replace(/\$(\d+)/g, (_, n: string) => {
    const literal = literals[Number(n) - 1];
    if (literal === undefined) unknownPlaceholder = true;
    return literal ?? '';
  });
  return unknownPlaceholder ? undefined : text;
}

/** NUL cannot be in a PostgreSQL text value; the parameterized path reports that error. */
function stringLiteral(value: string): string | undefined {
  return value.includes('\0') ? undefined : `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}
