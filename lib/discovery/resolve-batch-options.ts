import type { OnEventOptions, ResolvedBatchOptions } from '../decorators/on-event-options.js';

const MAX_BATCH = 10_000;
const DEFAULT_MAX_WAIT_MS = 50;

/**
 * `batch` checked against the options it cannot be combined with. Refused rather than half
 * supported: at-most-once would ack a whole batch before a call that may fail for some of it,
 * exactly-once through the KV store needs one idempotency lease per message held across one
 * call (the inbox gives a batch exactly-once instead: one transaction, one row per message), an
 * ordering lane runs one message at a time, and a timeout would abandon a call that settles
 * many messages.
 */
export function resolveBatchOptions(
  merged: OnEventOptions & { readonly inboxResolved: boolean },
  int: (value: number | undefined, fallback: number, name: string) => number,
  fail: (message: string) => never,
): ResolvedBatchOptions | undefined {
  const batch = merged.batch;
  if (batch === undefined) return undefined;
  if (batch === null || typeof batch !== 'object') return fail(`batch must be { maxMessages, maxWaitMs? }, got ${JSON.stringify(batch)}`);
  if (batch.maxMessages === undefined) fail('batch.maxMessages is required (messages per call, 1 to 10 000)');
  const maxMessages = int(batch.maxMessages, 0, 'batch.maxMessages');
  if (maxMessages > MAX_BATCH) fail(`batch.maxMessages must be at most ${MAX_BATCH}, got ${maxMessages}`);
  const maxWaitMs = batch.maxWaitMs === 0 ? 0 : int(batch.maxWaitMs, DEFAULT_MAX_WAIT_MS, 'batch.maxWaitMs');
  if (batch.payloadType !== undefined && typeof batch.payloadType !== 'function') fail('batch.payloadType must be a class');
  const delivery = merged.delivery ?? 'at-least-once';
  // The inbox resolves to 'exactly-once' through the database, which a batch supports.
  if (delivery !== 'at-least-once' && !merged.inboxResolved) {
    fail(
      `batch handlers support delivery 'at-least-once', or exactly-once through the inbox (inbox: true), got '${delivery}' (use inbox: true, or make the handler's writes idempotent, e.g. an upsert keyed by BatchMessage.context.msgId)`,
    );
  }
  if (merged.orderBy !== undefined) fail('batch cannot be combined with orderBy: a batch already keeps stream order within one call; use concurrency 1 for order across calls');
  if (merged.timeoutMs !== undefined) fail('batch cannot be combined with timeoutMs (an abandoned call would leave a whole batch unsettled); handlers are kept alive with working() instead');
  // Both would validate each message: one validator, so a message is not judged twice differently.
  if (merged.schema !== undefined && batch.payloadType !== undefined) fail('batch.payloadType and schema both validate each message of a batch: keep one');
  return { maxMessages, maxWaitMs, payloadType: batch.payloadType };
}
