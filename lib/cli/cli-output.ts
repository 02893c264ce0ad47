/** Where a command writes; the entry point binds it to the process, tests could bind it to buffers. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
}

export function printJson(io: CliIo, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** A plain aligned table: header row, then one row per item; `-` for empty cells. */
export function printTable(io: CliIo, headers: readonly string[], rows: ReadonlyArray<readonly (string | number | undefined)[]>): void {
  const cells = rows.map((row) => row.map((c) => (c === undefined || c === '' ? '-' : flat(String(c)))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (row: readonly string[]) =>
    row
      .map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  io.out(`${[line(headers), ...cells.map(line)].join('\n')}\n`);
}

/** Field/value lines for one record. */
export function printFields(io: CliIo, fields: ReadonlyArray<readonly [string, string | number | undefined]>): void {
  const width = Math.max(...fields.map(([k]) => k.length));
  io.out(`${fields.map(([k, v]) => `${`${k}:`.padEnd(width + 1)}  ${v === undefined || v === '' ? '-' : v}`).join('\n')}\n`);
}

export function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** An ISO time to the second, which is what a person reads in a table. */
export function shortTime(value: Date | string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const date = typeof value === 'string' ? new Date(value) : value;
  if (Number.isNaN(date.getTime()) || date.getTime() <= 0) return undefined;
  return `${date.toISOString().slice(0, 19)}Z`;
}

function flat(text: string): string {
  return text.replace(/[\r\n\t]+/g, ' ');
}
