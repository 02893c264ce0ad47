import { Injectable } from '@nestjs/common';

export type TrackedHandler = 'billing' | 'shipping' | 'audit';

interface HandlerStats {
  /** Events of this run the handler finished, keyed `subject|orderId`. */
  readonly handled: Set<string>;
  /** Deliveries of this run's events that were redeliveries (ctx.redelivered). */
  retries: number;
  expected: number;
}

export interface SummaryRow {
  readonly handler: TrackedHandler;
  readonly handled: number;
  readonly expected: number;
  readonly retries: number;
}

/**
 * In-memory bookkeeping for the sample: handlers report every event they finish, and `main.ts`
 * waits until each handler has seen everything this run published.
 *
 * Streams and durable consumers persist on the server, so against a long-lived NATS the
 * durables may still deliver events from earlier runs. Only order ids registered by this run
 * count; anything else is reported as `ignored`.
 */
@Injectable()
export class OrderTracker {
  private readonly orderIds = new Set<string>();
  private readonly stats = new Map<TrackedHandler, HandlerStats>();
  private flaky?: string;
  private ignoredCount = 0;
  private notify?: () => void;

  /** Declares what this run publishes, before it is published. */
  expect(orderIds: readonly string[], expected: Record<TrackedHandler, number>, flakyOrderId?: string): void {
    for (const id of orderIds) this.orderIds.add(id);
    for (const [handler, count] of Object.entries(expected) as Array<[TrackedHandler, number]>) {
      this.statsOf(handler).expected = count;
    }
    this.flaky = flakyOrderId;
  }

  isThisRun(orderId: unknown): orderId is string {
    return typeof orderId === 'string' && this.orderIds.has(orderId);
  }

  /** The order whose shipping fails once, to show a nak with backoff and the redelivery. */
  get flakyOrderId(): string | undefined {
    return this.flaky;
  }

  /** Records a delivery that reached the handler; a retry is counted even if it fails again. */
  delivered(handler: TrackedHandler, orderId: unknown, redelivered: boolean): void {
    if (!this.isThisRun(orderId)) {
      this.ignoredCount++;
      return;
    }
    if (redelivered) this.statsOf(handler).retries++;
  }

  /** Records an event the handler completed successfully. */
  handled(handler: TrackedHandler, subject: string, orderId: unknown): void {
    if (!this.isThisRun(orderId)) return;
    this.statsOf(handler).handled.add(`${subject}|${orderId}`);
    this.notify?.();
  }

  get ignored(): number {
    return this.ignoredCount;
  }

  summary(): SummaryRow[] {
    return [...this.stats.entries()].map(([handler, s]) => ({
      handler,
      handled: s.handled.size,
      expected: s.expected,
      retries: s.retries,
    }));
  }

  get complete(): boolean {
    return [...this.stats.values()].every((s) => s.handled.size >= s.expected);
  }

  /**
   * Resolves true as soon as every handler has handled what it expects, or false when the
   * deadline passes first. Event-driven: re-checked on every `handled` report.
   */
  waitUntilComplete(deadlineMs: number): Promise<boolean> {
    if (this.complete) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.notify = undefined;
        resolve(false);
      }, deadlineMs);
      this.notify = () => {
        if (!this.complete) return;
        clearTimeout(timer);
        this.notify = undefined;
        resolve(true);
      };
    });
  }

  private statsOf(handler: TrackedHandler): HandlerStats {
    let s = this.stats.get(handler);
    if (!s) {
      s = { handled: new Set(), retries: 0, expected: 0 };
      this.stats.set(handler, s);
    }
    return s;
  }
}
