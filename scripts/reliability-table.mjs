// The reliability table: rendered from the rows the reliability specs record, written into
// docs/reliability.md between markers, and compared with that page after each full run. The
// counts form a narrow table; each scenario's outcome and measured figures follow as a wrapped
// list item, so no line runs hundreds of characters wide.
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

const COUNTS = ['scenario', 'published', 'handled', 'lost', 'duplicates'];
const WIDTH = 100;

/** Words of `text` on lines of at most WIDTH characters, the first after `first`, the rest indented. */
function wrap(first, text) {
  const out = [];
  let line = first;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line.length + word.length + 1 > WIDTH && line.trim().length > 1) {
      out.push(line);
      line = '  ';
    }
    line += (line.endsWith(' ') ? '' : ' ') + word;
  }
  out.push(line);
  return out;
}

export function renderTable(rows) {
  const cells = rows.map((r) => COUNTS.map((c) => cell(r, c)));
  const widths = COUNTS.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => `| ${c.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
  const table = [line(COUNTS), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)];
  const notes = rows.flatMap((r) => wrap('-', `**${r.scenario}**: ${r.outcome}.${r.measured ? ` *Measured:* ${r.measured}` : ''}`));
  return [...table, '', ...notes].join('\n');
}

/** The page's block: the table between the markers, or undefined when the markers are missing. */
export function readmeBlock(readme) {
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin) return undefined;
  return readme.slice(begin + BEGIN.length, end).trim();
}

export function replaceReadmeBlock(readme, table) {
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`no ${BEGIN} … ${END} block`);
  return `${readme.slice(0, begin + BEGIN.length)}\n${table}\n${readme.slice(end)}`;
}

function parseTable(text) {
  const rows = new Map();
  const lines = text.split('\n');
  const tableLines = lines.filter((l) => l.startsWith('|'));
  const header = splitRow(tableLines[0] ?? '');
  for (const line of tableLines.slice(2)) {
    const values = splitRow(line);
    const row = Object.fromEntries(header.map((h, i) => [h, values[i] ?? '']));
    rows.set(row.scenario, row);
  }
  // The list below the table: `- **scenario**: outcome. *Measured:* figures`, wrapped.
  const items = [];
  for (const line of lines) {
    if (line.startsWith('- ')) items.push(line.slice(2));
    else if (line.startsWith('  ') && items.length) items[items.length - 1] += ` ${line.trim()}`;
  }
  for (const item of items) {
    const m = /^\*\*(.+?)\*\*: (.*?)(?:\. \*Measured:\* (.*))?$/.exec(item);
    if (!m) continue;
    const row = rows.get(m[1]) ?? { scenario: m[1] };
    row.outcome = m[2].replace(/\.$/, '');
    row.measured = m[3] ?? '';
    rows.set(m[1], row);
  }
  return { header: [...header, 'outcome', 'measured'], rows };
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
      let [x, y] = [documented[column] ?? '', generated[column] ?? ''];
      if (column === 'duplicates' && (x.endsWith(VARIES) || y.endsWith(VARIES))) {
        x = x.endsWith(VARIES) ? VARIES : x;
        y = y.endsWith(VARIES) ? VARIES : y;
      }
      if (x !== y) diffs.push(`"${name}", ${column}: README "${x}", run "${y}"`);
    }
  }
  return diffs;
}
