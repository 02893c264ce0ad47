import { compareTables, readmeBlock, renderTable, replaceReadmeBlock, type ReliabilityRow } from '../../scripts/reliability-table.mjs';

/** The README's reliability table is compared with each full run in everything but what a run measures. */
const rows: ReliabilityRow[] = [
  { scenario: 'broker crash, at-least-once', published: 1500, handled: 1500, lost: 0, duplicates: 17, duplicatesVary: true, outcome: 'resumed', measured: 'outage 3.4 s' },
  { scenario: 'poison: not JSON', published: 1, handled: 0, lost: 0, duplicates: 0, outcome: 'dead-lettered: invalid-payload' },
];
const table = renderTable(rows);
const withRow = (i: number, change: Partial<ReliabilityRow>) => renderTable(rows.map((r, j) => (j === i ? { ...r, ...change } : r)));

describe('reliability table check', () => {
  it('agrees with itself, and ignores the measured column and a duplicate count marked as varying', () => {
    expect(compareTables(table, table)).toEqual([]);
    expect(compareTables(table, withRow(0, { measured: 'outage 9.9 s', duplicates: 3 }))).toEqual([]);
  });

  it('names every other difference: counts, outcome, a promised duplicate count, missing or extra rows', () => {
    expect(compareTables(table, withRow(1, { handled: 1 }))).toEqual(['"poison: not JSON", handled: README "0", run "1"']);
    expect(compareTables(table, withRow(1, { lost: 1 }))).toEqual(['"poison: not JSON", lost: README "0", run "1"']);
    expect(compareTables(table, withRow(1, { outcome: 'handled' }))).toEqual(['"poison: not JSON", outcome: README "dead-lettered: invalid-payload", run "handled"']);
    expect(compareTables(table, withRow(1, { duplicates: 1 }))).toEqual(['"poison: not JSON", duplicates: README "0", run "1"']);
    expect(compareTables(table, withRow(0, { duplicatesVary: false }))).toEqual(['"broker crash, at-least-once", duplicates: README "(varies)", run "17"']);
    expect(compareTables(table, renderTable(rows.slice(1)))).toEqual(['"broker crash, at-least-once": in the README, not in the run']);
    expect(compareTables(renderTable(rows.slice(1)), table)).toEqual(['"broker crash, at-least-once": in the run, not in the README']);
  });

  it('rewrites only the block between the markers', () => {
    const readme = 'intro\n<!-- reliability:begin -->\nold\n<!-- reliability:end -->\nrest\n';
    const rewritten = replaceReadmeBlock(readme, table);
    expect(readmeBlock(rewritten)).toBe(table);
    expect(rewritten.startsWith('intro\n')).toBe(true);
    expect(rewritten.endsWith('<!-- reliability:end -->\nrest\n')).toBe(true);
    expect(() => replaceReadmeBlock('no markers', table)).toThrow(/no <!-- reliability:begin -->/);
  });
});
