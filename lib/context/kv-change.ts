import type { EventContext } from './event-context.js';

/** What happened to a key: a new value, a delete (the key's history is kept) or a purge. */
export type KvOperation = 'put' | 'delete' | 'purge';

/** A KV change as a handler sees it, besides the value (its first argument). */
export interface KvChange {
  readonly bucket: string;
  readonly key: string;
  readonly operation: KvOperation;
  /** The bucket's revision of this change: its sequence in the stream `KV_<bucket>`. */
  readonly revision: number;
  /**
   * Why the server removed the key, on a delete marker the server wrote itself (2.11+: a key
   * whose TTL ran out arrives as a delete with reason `MaxAge`); undefined for a client's change.
   */
  readonly markerReason: string | undefined;
}

const KV_PREFIX = '$KV.';

/** The stream of a KV bucket, as `@nats-io/kv` names it. */
export function kvBucketStream(bucket: string): string {
  return `KV_${bucket}`;
}

export function kvSubject(bucket: string, key: string): string {
  return `${KV_PREFIX}${bucket}.${key}`;
}

/** The bucket a KV subject (or subject filter) belongs to; undefined for any other subject. */
export function kvBucketOf(subject: string): string | undefined {
  if (!subject.startsWith(KV_PREFIX)) return undefined;
  const end = subject.indexOf('.', KV_PREFIX.length);
  return end === -1 ? undefined : subject.slice(KV_PREFIX.length, end);
}

/**
 * The KV change a message of a bucket's stream is: key, operation (the `KV-Operation` header
 * `DEL` or `PURGE`; none is a put) and revision. Undefined for a message outside a KV stream.
 */
export function kvChangeOf(ctx: EventContext): KvChange | undefined {
  const bucket = kvBucketOf(ctx.subject);
  if (bucket === undefined) return undefined;
  const markerReason = ctx.header('Nats-Marker-Reason');
  return {
    bucket,
    key: ctx.subject.slice(KV_PREFIX.length + bucket.length + 1),
    operation: kvOperationOf(ctx.header('KV-Operation'), markerReason),
    revision: ctx.sequence,
    markerReason,
  };
}

/** True for a change that carries no value (the handler's value is undefined, never validated). */
export function isKvRemoval(operation: string | undefined, markerReason: string | undefined): boolean {
  return kvOperationOf(operation, markerReason) !== 'put';
}

function kvOperationOf(header: string | undefined, markerReason: string | undefined): KvOperation {
  if (header === 'DEL') return 'delete';
  if (header === 'PURGE') return 'purge';
  // A server-written marker (TTL expiry, 2.11+) removes the key like a delete.
  return markerReason === undefined ? 'put' : 'delete';
}

/** A KV delete, purge or removal marker: the handler gets no value, and no pipe validates one. */
export function isKvRemovalMessage(ctx: EventContext): boolean {
  return kvBucketOf(ctx.subject) !== undefined && isKvRemoval(ctx.header('KV-Operation'), ctx.header('Nats-Marker-Reason'));
}
