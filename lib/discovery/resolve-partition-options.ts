import type { OnEventOptions, ResolvedPartitionOptions } from '../decorators/on-event-options.js';
import { DEFAULT_PINNED_TTL_MS, MIN_PINNED_TTL_MS, pinnedGroup } from './resolve-exclusive-options.js';

/** Each partition's consumer has one priority group, named the same on every instance. */
export const PARTITION_GROUP = 'partition';
const MAX_PARTITIONS = 1_024;
const DEFAULT_MEMBER_TTL_MS = 5_000;
const MIN_MEMBER_TTL_MS = 1_500;

/**
 * `partitions` checked against what would break per-key order. Each partition is consumed like
 * an exclusive consumer (pinned, one unacknowledged message at most), so the same combinations
 * are refused; `concurrency` is the instance's capacity across the partitions it owns.
 */
export function resolvePartitionOptions(
  merged: OnEventOptions,
  int: (value: number | undefined, fallback: number, name: string) => number,
  fail: (message: string) => never,
): ResolvedPartitionOptions | undefined {
  const partitions = merged.partitions;
  if (partitions === undefined) return undefined;
  if (partitions === null || typeof partitions !== 'object') {
    return fail(`partitions must be { count, key?, memberTtlMs?, pinnedTtlMs? }, got ${JSON.stringify(partitions)}`);
  }
  const count = partitions.count;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_PARTITIONS) {
    fail(`partitions.count must be an integer from 1 to ${MAX_PARTITIONS}, got ${JSON.stringify(count)}`);
  }
  if (!merged.durable) fail('partitions needs a durable: it names the group and its partitions\' consumers, shared by every instance');
  if (merged.batch) fail('partitions cannot be combined with batch');
  if (merged.exclusive) fail('partitions already consumes each partition exclusively; drop exclusive');
  if (merged.orderBy !== undefined) {
    fail('partitions keeps the order of each key across the deployment; drop orderBy (set partitions.key to the key\'s wildcard instead)');
  }
  if (merged.maxAckPending !== undefined && merged.maxAckPending !== 1) {
    fail(`partitions holds one unacknowledged message per partition (max_ack_pending 1), so a takeover cannot reorder; got maxAckPending ${merged.maxAckPending}`);
  }
  const policy = merged.deliverPolicy;
  if (policy !== undefined && policy !== 'all' && policy !== 'new') {
    fail(`partitions supports deliverPolicy 'all' or 'new' (where the group's partition stream starts sourcing), got ${JSON.stringify(policy)}`);
  }
  const key = partitions.key === undefined ? [] : typeof partitions.key === 'number' ? [partitions.key] : partitions.key;
  if (!Array.isArray(key) || key.some((k) => typeof k !== 'number' || !Number.isInteger(k) || k < 1) || new Set(key).size !== key.length) {
    fail(`partitions.key must be the 1-based index of a * wildcard of the subject, or a list of distinct ones, got ${JSON.stringify(partitions.key)}`);
  }
  const memberTtlMs = int(partitions.memberTtlMs, DEFAULT_MEMBER_TTL_MS, 'partitions.memberTtlMs');
  if (memberTtlMs < MIN_MEMBER_TTL_MS) {
    fail(`partitions.memberTtlMs must be at least ${MIN_MEMBER_TTL_MS} ms (an instance heartbeats every third of it), got ${memberTtlMs}`);
  }
  const pinnedTtlMs = int(partitions.pinnedTtlMs, DEFAULT_PINNED_TTL_MS, 'partitions.pinnedTtlMs');
  if (pinnedTtlMs < MIN_PINNED_TTL_MS) {
    fail(`partitions.pinnedTtlMs must be at least ${MIN_PINNED_TTL_MS} ms (a live owner pulls again every third of it), got ${pinnedTtlMs}`);
  }
  return { count, key: [...key].sort((a, b) => a - b), memberTtlMs, pinned: pinnedGroup(PARTITION_GROUP, pinnedTtlMs) };
}

/**
 * The handler's subject with its partition key checked: every `key` index must name one of its
 * `*` wildcards. Returns the wildcards that make the key (all of them when `key` is empty).
 */
export function partitionKeyWildcards(subject: string, key: readonly number[], fail: (message: string) => never): number[] {
  const wildcards = subject.split('.').filter((t) => t === '*').length;
  if (wildcards === 0) {
    fail(`partitions takes the key from the subject's * wildcards, and "${subject}" has none (a trailing > cannot be a key)`);
  }
  const outOfRange = key.filter((k) => k > wildcards);
  if (outOfRange.length > 0) {
    fail(`partitions.key ${outOfRange.join(', ')} is out of range: "${subject}" has ${wildcards} * wildcard(s), numbered from 1`);
  }
  return key.length > 0 ? [...key] : Array.from({ length: wildcards }, (_, i) => i + 1);
}
