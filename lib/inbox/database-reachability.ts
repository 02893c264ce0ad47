import type { LoggerService } from '@nestjs/common';
import { describeCause } from '../errors/jetstream-errors.js';

/**
 * Whether the inbox's database answers, shared by every inbox handler of the application. While
 * it does not, one probe loop (a `SELECT 1` with backoff) runs for all the messages that wait on
 * it, and the outage is logged once when it starts and once when it ends, however many
 * messages wait: a database restart must not print a warning per message.
 */
export class DatabaseReachability {
  private outage: { readonly since: number; readonly back: Promise<void>; waiting: number } | undefined;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly probe: () => Promise<unknown>,
    private readonly table: string,
    private readonly logger: LoggerService,
    private readonly backoff: { readonly initialMs: number; readonly maxMs: number } = { initialMs: 100, maxMs: 5_000 },
  ) {}

  /** Resolves once the database answers a probe again. `cause`: the error that showed it gone. */
  untilReachable(cause: unknown): Promise<void> {
    if (!this.outage) {
      this.logger.warn(
        `Inbox ${this.table}: the database cannot be reached (${describeCause(cause)}); inbox handlers' messages wait for it, kept alive, without using up attempts; logged once until it answers`,
        'JetStreamInbox',
      );
      this.outage = { since: Date.now(), back: this.probeUntilBack(), waiting: 0 };
    }
    this.outage.waiting++;
    return this.outage.back;
  }

  /** Ends the probe loop (the application is closing); waiters are released by their handlers. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private async probeUntilBack(): Promise<void> {
    for (let delay = this.backoff.initialMs; ; delay = Math.min(delay * 2, this.backoff.maxMs)) {
      await new Promise<void>((resolve) => {
        this.timer = setTimeout(resolve, delay);
        // A probe loop must not keep a closing process alive.
        this.timer.unref();
      });
      if (this.closed) return new Promise<void>(() => undefined);
      try {
        await this.probe();
        break;
      } catch {
        // Still down: the next probe after a longer wait.
      }
    }
    const outage = this.outage!;
    this.outage = undefined;
    this.logger.log(
      `Inbox ${this.table}: the database answers again after ${Date.now() - outage.since} ms; ${outage.waiting} waiting attempt(s) run now`,
      'JetStreamInbox',
    );
  }
}
