import type { Logger } from '@nestjs/common';
import { describeCause } from '../errors/jetstream-errors.js';
import type { InboxStore } from './inbox-store.js';

const BATCH = 1_000;

/**
 * Deletes inbox rows older than the retention, every `intervalMs`, in batches. A failure (the
 * database down) is logged once per outage and retried on the next tick; rows kept a little
 * longer only make the inbox remember more.
 */
export class InboxCleanup {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private failing = false;

  constructor(
    private readonly store: InboxStore,
    private readonly retentionMs: number,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.runOnce(), this.intervalMs);
    this.timer.unref();
  }

  /** One pass: deletes expired rows until none are left; resolves to how many went. */
  runOnce(): Promise<void> {
    this.running ??= this.sweep().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private async sweep(): Promise<void> {
    let deleted = 0;
    try {
      for (;;) {
        const n = await this.store.deleteExpired(this.retentionMs, BATCH);
        deleted += n;
        if (n < BATCH || !this.timer) break;
      }
    } catch (err) {
      if (!this.failing) this.logger.warn(`Inbox cleanup failed (${describeCause(err)}); retrying every ${this.intervalMs} ms`);
      this.failing = true;
      return;
    }
    if (this.failing) this.logger.log('Inbox cleanup works again');
    this.failing = false;
    if (deleted > 0) this.logger.debug?.(`Inbox cleanup deleted ${deleted} expired rows`);
  }
}
