import { recordScenario, type ScenarioRow } from './report.js';

/**
 * The accounting of one fault scenario: which ids were published (the stream confirmed them),
 * how many times each was handled, and from that what was lost or duplicated. Handling counts
 * are side effects: a handler body that ran to its end for that id.
 */
export class Tally {
  private readonly published = new Set<string>();
  private readonly handled = new Map<string, number>();
  private readonly deadLettered = new Set<string>();

  /** The stream confirmed this id (a PubAck, duplicate or not). */
  confirmPublished(id: string): void {
    this.published.add(id);
  }

  /** One side effect for this id. */
  handle(id: string): void {
    this.handled.set(id, (this.handled.get(id) ?? 0) + 1);
  }

  /** The dead-letter stream holds this id: settled without a side effect, not lost. */
  deadLetter(id: string): void {
    this.deadLettered.add(id);
  }

  get publishedCount(): number {
    return this.published.size;
  }

  /** Distinct ids handled at least once. */
  get handledCount(): number {
    return this.handled.size;
  }

  timesHandled(id: string): number {
    return this.handled.get(id) ?? 0;
  }

  /** Published ids never handled, nor parked in the dead-letter stream. */
  lost(): string[] {
    return [...this.published].filter((id) => !this.handled.has(id) && !this.deadLettered.has(id));
  }

  /** Ids handled more than once, with how often. */
  duplicates(): Array<[string, number]> {
    return [...this.handled].filter(([, n]) => n > 1);
  }

  /** Handled ids nobody published: a test bug or a foreign message, never expected. */
  unexpected(): string[] {
    return [...this.handled.keys()].filter((id) => !this.published.has(id));
  }

  /** True once every published id was handled at least once. */
  complete(): boolean {
    return this.published.size > 0 && this.lost().length === 0;
  }

  /** A one-line account for failure messages. */
  describe(): string {
    const lost = this.lost();
    const dups = this.duplicates();
    return `published ${this.published.size}, handled ${this.handled.size}, lost ${lost.length}${lost.length ? ` (e.g. ${lost.slice(0, 5).join(', ')})` : ''}, duplicates ${dups.length}${dups.length ? ` (e.g. ${dups.slice(0, 5).map(([id, n]) => `${id}x${n}`).join(', ')})` : ''}`;
  }

  /**
   * Appends this scenario's row to the reliability summary: of every id, or of `ids` only (one
   * input among several a scenario published). `measured` takes the run's timings and other
   * figures that differ from run to run; `duplicatesVary` marks a mode that allows duplicates.
   */
  record(scenario: string, outcome: string, options: RecordOptions = {}): ScenarioRow {
    const ids = options.ids ? new Set(options.ids) : undefined;
    const has = (id: string) => !ids || ids.has(id);
    const row: ScenarioRow = {
      scenario,
      published: [...this.published].filter(has).length,
      handled: [...this.handled.keys()].filter(has).length,
      lost: this.lost().filter(has).length,
      duplicates: this.duplicates().filter(([id]) => has(id)).length,
      ...(options.duplicatesVary ? { duplicatesVary: true } : {}),
      outcome,
      ...(options.measured ? { measured: options.measured } : {}),
    };
    recordScenario(row);
    return row;
  }
}

export interface RecordOptions {
  readonly ids?: readonly string[];
  readonly measured?: string;
  readonly duplicatesVary?: boolean;
}
