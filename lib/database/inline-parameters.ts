/**
 * `$n` placeholders replaced by SQL literals, for a statement sent with the simple-query protocol
 * (which takes several statements in one round trip, but no parameters). Only strings, finite
 * numbers and null are written; anything else gives undefined and the caller keeps its
 * parameterized statement. Strings go as `E'...'` with backslashes and quotes doubled, which
 * reads back the same whatever `standard_conforming_strings` is.
 */
export function inlineParameters(sql: string, params: readonly unknown[]): string | undefined {
  const literals: string[] = [];
  for (const value of params) {
    if (value === null) literals.push('NULL');
    else if (typeof value === 'number' && Number.isFinite(value)) literals.push(String(value));
    // NUL cannot be in a PostgreSQL text value; the parameterized path reports that error.
    else if (typeof value === 'string' && !value.includes('\0')) literals.push(`E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`);
    else return undefined;
  }
  let unknownPlaceholder = false;
  const text = sql.replace(/\$(\d+)/g, (_, n: string) => {
    const literal = literals[Number(n) - 1];
    if (literal === undefined) unknownPlaceholder = true;
    return literal ?? '';
  });
  return unknownPlaceholder ? undefined : text;
}
