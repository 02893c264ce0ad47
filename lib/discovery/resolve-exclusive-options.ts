import type { OnEventOptions, ResolvedExclusiveOptions } from '../decorators/on-event-options.js';

/** The consumer's priority group: one per consumer, named the same on every instance. */
export const EXCLUSIVE_GROUP = 'exclusive';
export const DEFAULT_PINNED_TTL_MS = 5_000;
export const MIN_PINNED_TTL_MS = 3_000;

/**
 * `exclusive` checked against what would break its order. The pin alone does not keep order
 * across a takeover: measured on nats-server 2.15.1, the messages a killed instance held come
 * back after their ack wait in no particular order (seq 214, 215, 203, 216, ...), and a pin that
 * moves before they are due lets later messages through first. So the consumer holds one
 * unacknowledged message at most (`max_ack_pending: 1`): the next one is delivered only once the
 * previous one is acked, or due again and redelivered first.
 */
export function resolveExclusiveOptions(
  merged: OnEventOptions,
  concurrency: number,
  int: (value: number | undefined, fallback: number, name: string) => number,
  fail: (message: string) => never,
): ResolvedExclusiveOptions | undefined {
  const exclusive = merged.exclusive;
  if (exclusive === undefined || exclusive === false) return undefined;
  if (exclusive !== true && (exclusive === null || typeof exclusive !== 'object')) {
    return fail(`exclusive must be true or { pinnedTtlMs? }, got ${JSON.stringify(exclusive)}`);
  }
  if (!merged.durable) fail('exclusive needs a durable: instances take turns on one shared consumer');
  if (merged.batch) fail('exclusive cannot be combined with batch');
  if (concurrency > 1 || merged.orderBy !== undefined) {
    fail('exclusive handles one message at a time in stream order across the deployment: use concurrency 1 and no orderBy');
  }
  if (merged.maxAckPending !== undefined && merged.maxAckPending !== 1) {
    fail(`exclusive holds one unacknowledged message at most (max_ack_pending 1), so a takeover cannot reorder; got maxAckPending ${merged.maxAckPending}`);
  }
  const pinnedTtlMs = int(exclusive === true ? undefined : exclusive.pinnedTtlMs, DEFAULT_PINNED_TTL_MS, 'exclusive.pinnedTtlMs');
  if (pinnedTtlMs < MIN_PINNED_TTL_MS) {
    fail(`exclusive.pinnedTtlMs must be at least ${MIN_PINNED_TTL_MS} ms (a live instance pulls again every third of it, at least every second), got ${pinnedTtlMs}`);
  }
  return pinnedGroup(EXCLUSIVE_GROUP, pinnedTtlMs);
}

/** A pinned consumer's settings: exclusive consumers and every partition of a partitioned group. */
export function pinnedGroup(group: string, pinnedTtlMs: number): ResolvedExclusiveOptions {
  // A live pinned instance pulls at least three times per TTL, so a slow pull never costs it the pin.
  const pullExpiresMs = Math.min(30_000, Math.floor(pinnedTtlMs / 3));
  return { group, pinnedTtlMs, pullExpiresMs };
}
