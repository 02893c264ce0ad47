import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * One line of the reliability summary: what a fault scenario published, handled, lost, duplicated.
 * The README's table is generated from these rows and checked against each full run, so every
 * field but `measured` must come out the same on every run of the same code.
 */
export interface ScenarioRow {
  /** Names the scenario; no figures of the run in it. */
  readonly scenario: string;
  readonly published: number;
  readonly handled: number;
  readonly lost: number;
  readonly duplicates: number;
  /**
   * Set where the mode allows duplicates (at-least-once under a fault): how many of them a run
   * sees depends on timing, so the table marks the figure and the check does not compare it.
   */
  readonly duplicatesVary?: boolean;
  /** What happened, in words that hold on every run: "resumed after restart", "dead-lettered: invalid-payload"... */
  readonly outcome: string;
  /** This run's timings and timing-dependent figures: shown in the table, never compared. */
  readonly measured?: string;
}

/**
 * Where rows go. Jest runs specs in several workers, so each row is appended as one JSON line
 * (a single small write is atomic enough for appends) and `scripts/reliability-summary.mjs`
 * turns the file into the table after the run.
 */
export const REPORT_ROWS = resolve(process.env.RELIABILITY_ROWS ?? '.cache/reliability/rows.jsonl');

export function recordScenario(row: ScenarioRow): void {
  mkdirSync(dirname(REPORT_ROWS), { recursive: true });
  appendFileSync(REPORT_ROWS, `${JSON.stringify({ ...row, at: new Date().toISOString() })}\n`);
}

/** Larger counts under `npm run test:soak` (SOAK=1); the default run keeps CI quick. */
export function scale(defaultCount: number, soakCount: number): number {
  return process.env.SOAK === '1' ? soakCount : defaultCount;
}
