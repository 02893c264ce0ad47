// Turns the rows the reliability specs recorded into a table: printed, and written as markdown.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const rowsFile = process.env.RELIABILITY_ROWS ?? '.cache/reliability/rows.jsonl';
const outFile = process.env.RELIABILITY_SUMMARY ?? '.cache/reliability/summary.md';
if (!existsSync(rowsFile)) {
  console.log('reliability summary: no scenario rows recorded');
  process.exit(0);
}
const rows = readFileSync(rowsFile, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line))
  .sort((a, b) => a.scenario.localeCompare(b.scenario));
const header = ['scenario', 'published', 'handled', 'lost', 'duplicates', 'outcome'];
const cells = rows.map((r) => header.map((h) => String(r[h])));
const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
const line = (c) => `| ${c.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
const table = [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
writeFileSync(outFile, `${table}\n`);
console.log(`\nReliability summary (${rows.length} scenarios, also in ${outFile}):\n${table}`);
