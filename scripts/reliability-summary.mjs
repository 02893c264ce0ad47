// Turns the rows the reliability specs recorded into a table: printed, and written as markdown.
import { existsSync, writeFileSync } from 'node:fs';
import { readRows, renderTable } from './reliability-table.mjs';

const rowsFile = process.env.RELIABILITY_ROWS ?? '.cache/reliability/rows.jsonl';
const outFile = process.env.RELIABILITY_SUMMARY ?? '.cache/reliability/summary.md';
if (!existsSync(rowsFile)) {
  console.log('reliability summary: no scenario rows recorded');
  process.exit(0);
}
const rows = readRows(rowsFile);
const table = renderTable(rows);
writeFileSync(outFile, `${table}\n`);
console.log(`\nReliability summary (${rows.length} scenarios, also in ${outFile}):\n${table}`);
