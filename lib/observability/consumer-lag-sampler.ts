import type { Logger } from '@nestjs/common';
import type { JetStreamManager } from '@nats-io/jetstream';
import { describeCause } from '../errors/jetstream-errors.js';

export interface LagTarget {
  readonly stream: string;
  readonly consumer: string;
}

export interface LagSample extends LagTarget {
  /** Messages matching the consumer not yet delivered to it (`num_pending`). */
  readonly pending: number;
  /** Delivered, not yet acknowledged (`num_ack_pending`). */
  readonly ackPending: number;
}

export type LagResult = LagSample | (LagTarget & { readonly error: string });

/** One consumer's lag from the server, or why it could not be read, within `timeoutMs`. */
export async function readLag(jsm: JetStreamManager, target: LagTarget, timeoutMs: number): Promise<LagResult> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no consumer info within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const info = await Promise.race([jsm.consumers.info(target.stream, target.consumer), deadline]);
    return { ...target, pending: info.num_pending, ackPending: info.num_ack_pending };
  } catch (err) {
    return { ...target, error: describeCause(err) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads `consumer info` of every running consumer on a timer and hands the numbers over (to the
 * lag gauges). One request per consumer per interval, none per message; the timer never keeps
 * the process alive and stops with the consumers.
 */
export class ConsumerLagSampler {
  private timer?: NodeJS.Timeout;
  private sampling?: Promise<void>;
  private failing = new Set<string>();
  private readonly seen = new Map<string, LagTarget>();

  constructor(
    private readonly jsm: JetStreamManager,
    private readonly targets: () => readonly LagTarget[],
    private readonly record: (sample: LagSample) => void,
    private readonly forget: (target: LagTarget) => void,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (this.timer) return;
    void this.sampleNow();
    this.timer = setInterval(() => void this.sampleNow(), this.intervalMs);
    this.timer.unref();
  }

  /** Samples every target once; a sample already under way is joined, not doubled. */
  sampleNow(): Promise<void> {
    this.sampling ??= this.sampleAll().finally(() => (this.sampling = undefined));
    return this.sampling;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.sampling;
    for (const target of this.seen.values()) this.forget(target);
    this.seen.clear();
  }

  private async sampleAll(): Promise<void> {
    const results = await Promise.all(this.targets().map((t) => readLag(this.jsm, t, Math.max(1_000, this.intervalMs))));
    for (const result of results) {
      const key = `${result.stream}\u0000${result.consumer}`;
      if ('error' in result) {
        // Once per failure streak: a broker outage must not flood the log every interval.
        if (!this.failing.has(key)) {
          this.failing.add(key);
          this.logger.warn(`Consumer lag of ${result.stream}/${result.consumer} unavailable: ${result.error}`);
        }
        continue;
      }
      this.failing.delete(key);
      this.seen.set(key, result);
      this.record(result);
    }
  }
}
