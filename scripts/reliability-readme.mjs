// The reliability table of docs/reliability.md, generated from the rows of the last full run.
//   --write  rewrites the block between the page's markers (`npm run reliability:report`)
//   --check  fails when the page's block and the last run disagree in anything but the
//            measured column (scripts/run-tests.sh runs it after every full run)
// Both need a run in which every reliability spec ran and passed at the default scale: a
// partial or soak run has other rows, and is skipped by --check, refused by --write.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { compareTables, readRows, readmeBlock, renderTable, replaceReadmeBlock } from './reliability-table.mjs';

const root = resolve(import.meta.dirname, '..');
const rowsFile = process.env.RELIABILITY_ROWS ?? resolve(root, '.cache/reliability/rows.jsonl');
const resultsFile = resolve(root, '.cache/jest-results.json');
const readmeFile = process.env.RELIABILITY_README ?? resolve(root, 'docs/reliability.md');
const mode = process.argv[2];

/** Why the last run cannot stand for the table, or undefined when it can. */
function incompleteRun() {
  if (process.env.SOAK === '1') return 'a soak run (SOAK=1) publishes other counts';
  if (!existsSync(resultsFile)) return `no jest results in ${resultsFile}`;
  if (!existsSync(rowsFile)) return `no scenario rows in ${rowsFile}`;
  const results = JSON.parse(readFileSync(resultsFile, 'utf8')).testResults;
  const specs = readdirSync(resolve(root, 'test/reliability')).filter((f) => f.endsWith('.spec.ts'));
  for (const spec of specs) {
    const result = results.find((r) => r.name === resolve(root, 'test/reliability', spec));
    if (!result) return `test/reliability/${spec} did not run`;
    const notPassed = result.assertionResults.filter((a) => a.status !== 'passed');
    if (notPassed.length) return `test/reliability/${spec}: ${notPassed.length} test(s) ${notPassed[0].status}`;
  }
  return undefined;
}

const why = incompleteRun();
if (mode === '--write') {
  if (why) {
    console.error(`reliability:report: the last run cannot stand for the table (${why}); run \`npm test\` or \`npm run test:reliability\` first`);
    process.exit(1);
  }
  const readme = readFileSync(readmeFile, 'utf8');
  writeFileSync(readmeFile, replaceReadmeBlock(readme, renderTable(readRows(rowsFile))));
  console.log(`reliability:report: the table of docs/reliability.md rewritten from ${rowsFile}`);
} else if (mode === '--check') {
  if (why) {
    console.log(`reliability table check skipped: ${why}`);
    process.exit(0);
  }
  const block = readmeBlock(readFileSync(readmeFile, 'utf8'));
  if (block === undefined) {
    console.error(`reliability table check FAILED: ${readmeFile} has no reliability:begin/end block`);
    process.exit(1);
  }
  const diffs = compareTables(block, renderTable(readRows(rowsFile)));
  if (diffs.length) {
    console.error(`reliability table check FAILED: the table of docs/reliability.md does not match this run (the measured column aside):\n  ${diffs.join('\n  ')}\nIf the change is intended, run \`npm run reliability:report\` and commit docs/reliability.md.`);
    process.exit(1);
  }
  console.log('reliability table check: docs/reliability.md matches this run (the measured column aside)');
} else {
  console.error('usage: node scripts/reliability-readme.mjs --write | --check');
  process.exit(2);
}
