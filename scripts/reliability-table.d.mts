// Types of reliability-table.mjs, for the unit test that checks the comparison.
import type { ScenarioRow } from '../test/reliability/report.js';

export type ReliabilityRow = ScenarioRow;
export const BEGIN: string;
export const END: string;
export const COLUMNS: readonly string[];
export function readRows(file: string): ReliabilityRow[];
export function renderTable(rows: readonly ReliabilityRow[]): string;
export function readmeBlock(readme: string): string | undefined;
export function replaceReadmeBlock(readme: string, table: string): string;
export function compareTables(readmeTable: string, generatedTable: string): string[];
