import { createHash } from 'node:crypto';
import { JetStreamApiError } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

export const DEFAULT_IDEMPOTENCY_BUCKET = 'nestjs_jetstream_idempotency';

interface IdempotencyRecord {
  /** p: a handler holds the lease; d: the handler succeeded. */
  readonly s: 'p' | 'd';
  /** Lease end, epoch ms. */
  readonly u: number;
  readonly o: string;
}

export type LeaseResult =
  | { readonly kind: 'acquired'; readonly revision: number }
  | { readonly kind: 'done' }
  | { readonly kind: 'busy'; readonly retryInMs: number };

const KEY_SAFE = /^[\w=-]{1,200}$/;
const MAX_UNRECORDED = 10_000;
// About 1 MB of keys: covers the redeliveries that follow a broker restart at thousands of msg/s.
const MAX_RECENTLY_DONE = 10_000;

/**
 * One record per (consumer, message) in a KV bucket: taken as a lease before the handler runs,
 * marked done after it succeeds. Create-if-absent and compare-and-set revisions make two
 * instances racing on one redelivery agree on a single winner.
 */
export class IdempotencyStore {
  /**
   * Handlers that succeeded in this process whose done mark could not be written (broker down
   * or restarting): key → lease revision. A redelivery of one of these writes the mark instead
   * of running the handler again; otherwise the record, still "processing" (or lost with the
   * broker's last writes), would let the handler run twice once the lease ran out.
   */
  private readonly unrecorded = new Map<string, number>();

  /**
   * Keys this process recorded as done, most recent last. A broker killed with -9 can lose its
   * last acknowledged writes (file storage flushes asynchronously), the done mark and the ack
   * among them; the redelivery then finds no record. When it comes back to this instance, which
   * is the usual case, this memory still knows, and the mark is written again.
   */
  private readonly recentlyDone = new Set<string>();

  /**
   * Keys whose handler this process is running or recording right now. After a broker restart
   * that lost the lease, the message can be redelivered while the first call is still waiting
   * to record its completion; the KV record cannot tell, this set can.
   */
  private readonly active = new Set<string>();

  private constructor(
    private readonly kv: KV,
    private readonly owner: string,
  ) {}

  static async open(nc: NatsConnection, bucket: string, ttlMs: number, owner: string): Promise<IdempotencyStore> {
    const kv = await new Kvm(nc).create(bucket, { history: 1, ttl: ttlMs });
    return new IdempotencyStore(kv, owner);
  }

  /** KV keys allow a narrow alphabet; anything else is hashed, keeping keys stable. */
  static key(stream: string, consumer: string, messageKey: string): string {
    const k = KEY_SAFE.test(messageKey) ? messageKey : createHash('sha256').update(messageKey).digest('base64url');
    // Consumer names are unique per stream only; stream names may hold characters keys cannot.
    const s = KEY_SAFE.test(stream) ? stream : createHash('sha256').update(stream).digest('base64url').slice(0, 16);
    return `${s}.${consumer}.${k}`;
  }

  async acquire(key: string, leaseMs: number): Promise<LeaseResult> {
    const unrecordedRevision = this.unrecorded.get(key);
    if (unrecordedRevision !== undefined) {
      await this.complete(key, unrecordedRevision);
      return { kind: 'done' };
    }
    if (this.active.has(key)) return { kind: 'busy', retryInMs: 250 };
    if (this.recentlyDone.has(key)) {
      await this.kv.put(key, JSON.stringify({ s: 'd', u: 0, o: this.owner } satisfies IdempotencyRecord));
      return { kind: 'done' };
    }
    const record = (until: number): string => JSON.stringify({ s: 'p', u: until, o: this.owner } satisfies IdempotencyRecord);
    try {
      return this.acquired(key, await this.kv.create(key, record(Date.now() + leaseMs)));
    } catch (err) {
      if (!isWrongSequence(err)) throw err;
    }
    const entry = await this.kv.get(key);
    if (!entry || entry.operation !== 'PUT') {
      // Deleted between our create and get: take it on the next delivery.
      return { kind: 'busy', retryInMs: 100 };
    }
    const current = entry.json<IdempotencyRecord>();
    if (current.s === 'd') return { kind: 'done' };
    const remaining = current.u - Date.now();
    if (remaining > 0) return { kind: 'busy', retryInMs: remaining };
    // The lease holder died mid-handler: take over, unless another instance just did.
    try {
      return this.acquired(key, await this.kv.update(key, record(Date.now() + leaseMs), entry.revision));
    } catch (err) {
      if (!isWrongSequence(err)) throw err;
      return { kind: 'busy', retryInMs: 100 };
    }
  }

  private acquired(key: string, revision: number): LeaseResult {
    this.active.add(key);
    return { kind: 'acquired', revision };
  }

  /** Marks the message handled. False when our lease was taken over meanwhile. */
  async complete(key: string, revision: number): Promise<boolean> {
    const done = JSON.stringify({ s: 'd', u: 0, o: this.owner } satisfies IdempotencyRecord);
    let completed: boolean;
    try {
      completed = await this.markDone(key, done, revision);
    } catch (err) {
      this.remember(key, revision);
      this.active.delete(key);
      throw err;
    }
    this.unrecorded.delete(key);
    this.recentlyDone.add(key);
    if (this.recentlyDone.size > MAX_RECENTLY_DONE) this.recentlyDone.delete(this.recentlyDone.values().next().value!);
    this.active.delete(key);
    return completed;
  }

  private async markDone(key: string, done: string, revision: number): Promise<boolean> {
    try {
      await this.kv.update(key, done, revision);
      return true;
    } catch (err) {
      if (!isWrongSequence(err)) throw err;
      await this.kv.put(key, done);
      return false;
    }
  }

  private remember(key: string, revision: number): void {
    this.unrecorded.set(key, revision);
    // Bounded: only completions that failed during an outage land here, and they clear on the
    // redelivery; the oldest go first if an outage outlasts many of them.
    if (this.unrecorded.size > MAX_UNRECORDED) this.unrecorded.delete(this.unrecorded.keys().next().value!);
  }

  /** Gives the lease up after a failure, so the retry (or a redrive) can run the handler. */
  async release(key: string): Promise<void> {
    this.active.delete(key);
    await this.kv.delete(key);
  }
}

function isWrongSequence(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 10071 || err.code === 10164);
}
