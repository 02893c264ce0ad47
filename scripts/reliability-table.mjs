// The reliability table: rendered from the rows the reliability specs record, written into the
// README between markers, and compared with the README after each full run.
import { readFileSync } from 'node:fs';

export const BEGIN = '<!-- reliability:begin -->';
export const END = '<!-- reliability:end -->';
export const COLUMNS = ['scenario', 'published', 'handled', 'lost', 'duplicates', 'outcome', 'measured'];
/** Marks a duplicate count that the mode allows to differ from run to run (at-least-once under a fault). */
const VARIES = '(varies)';

export function readRows(file) {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line))
    .sort((a, b) => a.scenario.localeCompare(b.scenario));
}

function cell(row, column) {
  if (column === 'duplicates' && row.duplicatesVary) return `${row.duplicates} ${VARIES}`;
  // A pipe would split the cell.
  return String(row[column] ?? '').replace(/\|/g, '\\|');
}

export function renderTable(rows) {
  const cells = rows.map((r) => COLUMNS.map((c) => cell(r, c)));
  const widths = COLUMNS.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => `| ${c.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
  return [line(COLUMNS), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

/** The README's block: the table between the markers, or undefined when the markers are missing. */
export function readmeBlock(readme) {
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin) return undefined;
  return readme.slice(begin + BEGIN.length, end).trim();
}

export function replaceReadmeBlock(readme, table) {
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`README has no ${BEGIN} … ${END} block`);
  return `${readme.slice(0, begin + BEGIN.length)}\n${table}\n${readme.slice(end)}`;
}

function parseTable(text) {
  const rows = new Map();
  const lines = text.split('\n').filter((l) => l.startsWith('|'));
  const header = splitRow(lines[0] ?? '');
  for (const line of lines.slice(2)) {
    const values = splitRow(line);
    const row = Object.fromEntries(header.map((h, i) => [h, values[i] ?? '']));
    rows.set(row.scenario, row);
  }
  return { header, rows };
}

function splitRow(line) {
  return line
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/)
    .map((v) => v.trim());
}

/**
 * Where two tables disagree, as lines for a person to read; empty when they agree. Ignored:
 * the `measured` column (timings and timing-dependent figures) and, in a row marked "(varies)",
 * the duplicate count itself: at-least-once under a fault makes as many as the timing gives.
 * Everything else must match: which scenarios ran, published, handled, lost, the outcome, and
 * whether a row's duplicates are promised (an exact figure) or allowed (marked).
 */
export function compareTables(readmeTable, generatedTable) {
  const a = parseTable(readmeTable);
  const b = parseTable(generatedTable);
  const diffs = [];
  if (a.header.join('|') !== b.header.join('|')) diffs.push(`columns: README has ${a.header.join(', ')}; the run has ${b.header.join(', ')}`);
  for (const name of a.rows.keys()) if (!b.rows.has(name)) diffs.push(`"${name}": in the README, not in the run`);
  for (const [name, generated] of b.rows) {
    const documented = a.rows.get(name);
    if (!documented) {
      diffs.push(`"${name}": in the run, not in the README`);
      continue;
    }
    for (const column of COLUMNS) {
      if (column === 'measured' || column === 'scenario') continue;
      let [x, y] = [documented[column], generated[column]];
      if (column === 'duplicates' && (x.endsWith(VARIES) || y.endsWith(VARIES))) {
        x = x.endsWith(VARIES) ? VARIES : x;
        y = y.endsWith(VARIES) ? VARIES : y;
      }
      if (x !== y) diffs.push(`"${name}", ${column}: README "${x}", run "${y}"`);
    }
  }
  return diffs;
}
