// Types of reliability-table.mjs, for the unit test that checks the comparison.
export interface ReliabilityRow {
  readonly scenario: string;
  readonly published: number;
  readonly handled: number;
  readonly lost: number;
  readonly duplicates: number;
  readonly duplicatesVary?: boolean;
  readonly outcome: string;
  readonly measured?: string;
}
export const BEGIN: string;
export const END: string;
export const COLUMNS: readonly string[];
export function readRows(file: string): ReliabilityRow[];
export function renderTable(rows: readonly ReliabilityRow[]): string;
export function readmeBlock(readme: string): string | undefined;
export function replaceReadmeBlock(readme: string, table: string): string;
export function compareTables(readmeTable: string, generatedTable: string): string[];
