import type { PublishResult } from '../../lib/index.js';

export interface PublishLoopOptions {
  /** Publishes awaiting their ack at once. */
  readonly lanes: number;
  /** Upper bound on publishes started per second (all lanes together); load shaping, so a fault lands mid-stream. */
  readonly ratePerSecond: number;
  /** Pause before a lane tries an id again after an error, as a caller's retry policy would. */
  readonly retryPauseMs: number;
  /** Called once per id, when the stream confirmed it. */
  readonly onStored?: (id: string, result: PublishResult) => void;
}

export interface PublishLoopStats {
  /** Ids the stream confirmed. */
  stored: number;
  /** Confirmations that said the stream already had the msg-id (an earlier, "failed" attempt got through). */
  storedAsDuplicate: number;
  /** Publish calls that rejected, by error class: each id was tried again later with the same msg-id. */
  readonly errors: Map<string, number>;
  /** When the first and last error happened (epoch ms). */
  firstErrorAt?: number;
  lastErrorAt?: number;
}

export interface PublishLoop {
  readonly stats: PublishLoopStats;
  /** Resolves once every id is confirmed. */
  readonly done: Promise<void>;
  errorCount(): number;
  /** Lets the lanes finish their current call and stop (for cleanup after a failure). */
  stop(): void;
}

/**
 * What a careful caller does: publish each id with its id as the msg-id, and when the publisher
 * reports an error, treat the message as not published and publish it again later with the same
 * msg-id (the stream stores it once even if the failed attempt got through after all).
 */
export function startPublishLoop(
  ids: readonly string[],
  publish: (id: string) => Promise<PublishResult>,
  options: PublishLoopOptions,
): PublishLoop {
  const queue = [...ids];
  const stats: PublishLoopStats = { stored: 0, storedAsDuplicate: 0, errors: new Map() };
  const intervalMs = 1_000 / options.ratePerSecond;
  let nextSlot = Date.now();
  let stopped = false;

  const pace = async (): Promise<void> => {
    const now = Date.now();
    const slot = Math.max(nextSlot, now);
    nextSlot = slot + intervalMs;
    if (slot > now) await new Promise((resolve) => setTimeout(resolve, slot - now));
  };

  const lane = async (): Promise<void> => {
    while (!stopped) {
      const id = queue.shift();
      if (id === undefined) return;
      await pace();
      try {
        const result = await publish(id);
        stats.stored++;
        if (result.duplicate) stats.storedAsDuplicate++;
        options.onStored?.(id, result);
      } catch (err) {
        const name = err instanceof Error ? err.constructor.name : typeof err;
        stats.errors.set(name, (stats.errors.get(name) ?? 0) + 1);
        stats.firstErrorAt ??= Date.now();
        stats.lastErrorAt = Date.now();
        queue.push(id);
        await new Promise((resolve) => setTimeout(resolve, options.retryPauseMs));
      }
    }
  };

  const done = Promise.all(Array.from({ length: options.lanes }, lane)).then(() => undefined);
  return {
    stats,
    done,
    errorCount: () => [...stats.errors.values()].reduce((a, b) => a + b, 0),
    stop: () => {
      stopped = true;
    },
  };
}

/** `PublishTimeoutError x3, NoStreamForSubjectError x1` */
export function describeErrors(stats: PublishLoopStats): string {
  if (stats.errors.size === 0) return 'no publish errors';
  return [...stats.errors].map(([name, n]) => `${name} x${n}`).join(', ');
}
