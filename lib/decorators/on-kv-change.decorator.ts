import type { KvOptions } from '@nats-io/kv';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { kvBucketStream, kvSubject } from '../context/kv-change.js';
import type { OnEventOptions } from './on-event-options.js';
import { OnEvent } from './on-event.decorator.js';

/**
 * Options of a KV change handler: those of `@OnEvent` without the stream (it is the bucket's)
 * and batches, with the durable required: a change handler that forgot its place after a
 * restart would miss or replay changes.
 */
export type OnKvChangeOptions = Omit<OnEventOptions, 'stream' | 'batch' | 'durable' | 'kvBucket'> & {
  /** Durable consumer name on the bucket's stream `KV_<bucket>`. */
  durable: string;
  /**
   * Create the bucket at startup when it does not exist, with these options (`{}` for the
   * defaults; `{ history: 10 }`, ...). An existing bucket is used as it is, never changed.
   * Default: the bucket must exist, and startup fails naming it otherwise.
   */
  createBucket?: Partial<KvOptions>;
};

// A KV bucket name (nats.js's validateBucket) and a key or key pattern (its key rules, with
// `*` and `>` as whole tokens, which the subject check of `@OnEvent` enforces).
const BUCKET = /^[-\w]+$/;
const KEY_PATTERN = /^[-/=.\w*>]+$/;

/**
 * Runs the decorated method for every put, delete and purge of the keys of `bucket` matching
 * `keyPattern` (`'cart.*'`, `'>'` for all). It is an `@OnEvent` handler on the bucket's stream
 * `KV_<bucket>`, subject `$KV.<bucket>.<keyPattern>`: the same pipeline, retries and dead
 * letters. The first parameter is the value, decoded and validated like a payload (undefined
 * for a delete or purge); `kvChangeOf(ctx)` gives the key, operation and revision.
 */
export function OnKvChange(bucket: string, keyPattern: string, options: OnKvChangeOptions): MethodDecorator {
  const where = `@OnKvChange('${bucket}', '${keyPattern}')`;
  if (typeof bucket !== 'string' || !BUCKET.test(bucket)) {
    throw new InvalidOptionsError(`${where}: a bucket name holds only letters, digits, "-" and "_"`);
  }
  if (typeof keyPattern !== 'string' || !KEY_PATTERN.test(keyPattern)) {
    throw new InvalidOptionsError(`${where}: a key pattern holds only letters, digits, "-/_=." and the wildcards "*" and ">"`);
  }
  if (!options || typeof options.durable !== 'string' || options.durable.length === 0) {
    throw new InvalidOptionsError(`${where}: a KV change handler needs a durable ({ durable: '<name>' }) so that it resumes after a restart without missing or replaying changes`);
  }
  const { stream, batch, createBucket, ...rest } = options as OnEventOptions & { createBucket?: Partial<KvOptions> };
  if (stream !== undefined || batch !== undefined) {
    throw new InvalidOptionsError(`${where}: stream and batch cannot be set (the stream is the bucket's, KV_${bucket})`);
  }
  if (createBucket !== undefined && (typeof createBucket !== 'object' || createBucket === null)) {
    throw new InvalidOptionsError(`${where}: createBucket must be the bucket's options ({} for the defaults)`);
  }
  return OnEvent(kvSubject(bucket, keyPattern), { ...rest, stream: kvBucketStream(bucket), kvBucket: { name: bucket, create: createBucket } });
}
