import type { DatabaseReachability } from './database-reachability.js';

/**
 * One inbox handler's messages held while the database cannot be reached. An attempt that
 * could not even begin its transaction ran nothing, so it runs again, as the same attempt, once
 * the database answers: the server's delivery count does not move, and an outage longer than
 * the retry budget dead-letters nothing. The runner's heartbeat keeps the held messages alive,
 * and their slots stay taken, so nothing more is pulled meanwhile. When the application stops,
 * the held messages are handed back for another instance.
 */
export class DatabaseHold {
  private stopped = false;
  private release: (() => void) | undefined;
  private readonly stopping = new Promise<false>((resolve) => {
    this.release = () => resolve(false);
  });

  constructor(private readonly reachability: DatabaseReachability) {}

  /** True once the database answers (run the attempt again); false when stopping (hand it back). */
  wait(cause: unknown): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    return Promise.race([this.reachability.untilReachable(cause).then(() => !this.stopped), this.stopping]);
  }

  stop(): void {
    this.stopped = true;
    this.release?.();
  }
}
