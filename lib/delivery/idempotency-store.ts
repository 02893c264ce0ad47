import { createHash } from 'node:crypto';
import { JetStreamApiError } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import type { ReplyInbox } from '../connection/reply-inbox.js';
import { ApiCode, hasApiCode } from '../errors/jetstream-api-codes.js';

/**
 * The KV value of one message key. One is written per exactly-once message, so the field names
 * on the wire are one letter each; each is named here.
 */
interface IdempotencyRecord {
  /** State: `p` (processing) a handler took the lease; `d` (done) it succeeded and its ack was not confirmed. */
  readonly s: 'p' | 'd';
  /** Until: the lease's end, epoch ms of the writer's clock. */
  readonly u: number;
  /** Owner: `host:pid` of the process that wrote the record. */
  readonly o: string;
  /** seQuence: the stream sequence of the message that took the lease (absent in records of earlier versions). */
  readonly q?: number;
}

export type LeaseResult =
  | { readonly kind: 'acquired'; readonly revision: number }
  | { readonly kind: 'done' }
  | { readonly kind: 'busy'; readonly retryInMs: number };

const KEY_SAFE = /^[\w=-]{1,200}$/;
const MAX_UNRECORDED = 10_000;
// About 1 MB of keys: covers the redeliveries that follow a broker restart at thousands of msg/s.
const MAX_RECENTLY_DONE = 10_000;
const EXPECTED_SUBJECT_SEQUENCE = 'Nats-Expected-Last-Subject-Sequence';
const WRONG_SEQUENCE: readonly ApiCode[] = [ApiCode.StreamWrongLastSequence, ApiCode.StreamWrongLastSequenceUnknown];
/** Message key of a consumer's replay marker; `=` keeps it apart from sequences and hashes. */
const REPLAY_MARKER = '=replay';

/** Written by `replayConsumer`: every sequence up to `upTo` was acked before `at` (epoch ms). */
interface ReplayMarker {
  readonly upTo: number;
  readonly at: number;
}

/**
 * One record per (consumer, message key) in a KV bucket, written once on the common path: a
 * lease taken before the handler runs, naming the stream sequence that took it. Success is
 * recorded by the confirmed ack (JetStream's double ack), not by a second write: once the
 * server confirms, it never redelivers that sequence, and a later message with the same key
 * finds the lease of an acked sequence. Only when the confirmation fails is the record marked
 * done. Create-if-absent and compare-and-set revisions make instances racing on one key agree
 * on a single winner.
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
   * Keys this process settled (ack confirmed or done mark written), most recent last. A broker
   * killed with -9 can lose writes it already confirmed (file storage flushes asynchronously),
   * the ack and the record among them; the redelivery then finds a lapsed lease of its own, or
   * no record. When it comes back to this instance, which is the usual case, this memory still
   * knows, and the done mark is written.
   */
  private readonly recentlyDone = new Set<string>();
  private readonly recentRing: (string | undefined)[] = new Array<string | undefined>(MAX_RECENTLY_DONE);
  private recentNext = 0;

  /**
   * Keys whose handler this process is running or settling right now → the stream sequence
   * running it. After a broker restart that lost the lease, the message can be redelivered
   * while the first call is still settling; the KV record cannot tell, this map can.
   */
  private readonly active = new Map<string, number>();

  private readonly encoder = new TextEncoder();

  private constructor(
    private readonly kv: KV,
    private readonly bucket: string,
    private readonly inbox: ReplyInbox,
    private readonly owner: string,
  ) {}

  static async open(nc: NatsConnection, inbox: ReplyInbox, bucket: string, ttlMs: number, owner: string): Promise<IdempotencyStore> {
    const kv = await new Kvm(nc).create(bucket, { history: 1, ttl: ttlMs });
    return new IdempotencyStore(kv, bucket, inbox, owner);
  }

  /** KV keys allow a narrow alphabet; anything else is hashed, keeping keys stable. */
  static key(stream: string, consumer: string, messageKey: string): string {
    const k = KEY_SAFE.test(messageKey) ? messageKey : createHash('sha256').update(messageKey).digest('base64url');
    // Consumer names are unique per stream only; stream names may hold characters keys cannot.
    const s = KEY_SAFE.test(stream) ? stream : createHash('sha256').update(stream).digest('base64url').slice(0, 16);
    return `${s}.${consumer}.${k}`;
  }

  /**
   * Takes the lease on `key` for the message at stream sequence `seq`, or says why not: `done`
   * (a duplicate, or handled before: ack it without running), `busy` (someone may be running
   * it: look again later).
   */
  async acquire(key: string, seq: number, leaseMs: number): Promise<LeaseResult> {
    const unrecordedRevision = this.unrecorded.get(key);
    if (unrecordedRevision !== undefined) {
      await this.complete(key, unrecordedRevision);
      return { kind: 'done' };
    }
    // Running here now: a redelivery of it waits; another message with its key is a copy (below).
    const running = this.active.get(key);
    if (running !== undefined) return running === seq ? { kind: 'busy', retryInMs: 250 } : { kind: 'done' };
    if (this.recentlyDone.has(key)) {
      await this.kv.put(key, this.record('d', 0, seq));
      return { kind: 'done' };
    }
    try {
      return this.acquired(key, seq, await this.write(key, this.record('p', Date.now() + leaseMs, seq), 0));
    } catch (err) {
      if (!isWrongSequence(err)) throw err;
    }
    const entry = await this.kv.get(key);
    if (!entry) {
      // Expired (bucket TTL) between our create and get: take it on the next delivery.
      return { kind: 'busy', retryInMs: 100 };
    }
    if (entry.operation !== 'PUT') {
      // A released lease leaves a delete marker; the create above expects no record at all.
      return this.takeOver(key, seq, leaseMs, entry.revision);
    }
    const current = entry.json<IdempotencyRecord>();
    if (current.s === 'd') return { kind: 'done' };
    // Another message with this key (a publish repeated after the duplicate window, a redrive)
    // holds the record: it either succeeded, or is still in the hands of its own deliveries,
    // since a failed handler releases the record before its message is given up.
    if (current.q !== undefined && current.q !== seq) return { kind: 'done' };
    // Our own sequence again: its holder may still run it, may have died before its ack was
    // confirmed, or its ack was confirmed and the consumer has since been replayed. Only a
    // replay marker tells the last case apart; without one, never skip (a broker that lost its
    // consumer state redelivers the same way, and skipping there would lose the message).
    if (current.q === seq && (await this.ackedBeforeReplay(key, seq, current.u - leaseMs))) return { kind: 'done' };
    const remaining = current.u - Date.now();
    if (remaining > 0) return { kind: 'busy', retryInMs: remaining };
    // Lapsed: the holder died mid-handler.
    return this.takeOver(key, seq, leaseMs, entry.revision);
  }

  /** The ack of the message that holds `key` was confirmed: nothing left to write. */
  settled(key: string): void {
    this.unrecorded.delete(key);
    this.rememberDone(key);
    this.active.delete(key);
  }

  /**
   * Marks the message handled, for when its ack could not be confirmed. False when our lease
   * was taken over meanwhile.
   */
  async complete(key: string, revision: number): Promise<boolean> {
    let completed: boolean;
    try {
      completed = await this.markDone(key, revision);
    } catch (err) {
      this.remember(key, revision);
      this.active.delete(key);
      throw err;
    }
    this.settled(key);
    return completed;
  }

  /** Gives the lease up after a failure, so the retry (or a redrive) can run the handler. */
  async release(key: string): Promise<void> {
    this.active.delete(key);
    await this.kv.delete(key);
  }

  /** Deletes the record if the message at `seq` holds it, and only then (compare-and-set). */
  async releaseIfHeld(key: string, seq: number): Promise<void> {
    if (this.active.get(key) === seq) this.active.delete(key);
    const entry = await this.kv.get(key);
    if (entry?.operation !== 'PUT' || entry.json<IdempotencyRecord>().q !== seq) return;
    try {
      await this.kv.delete(key, { previousSeq: entry.revision });
    } catch (err) {
      // Changed since we read it: someone else holds it now, so it is not ours to release.
      if (!isWrongSequence(err)) throw err;
    }
  }

  /**
   * Notes, before a consumer is replayed, how far its acks reached: a replayed message at or
   * below that sequence whose lease predates the note was acked, hence handled. False when
   * there is no idempotency bucket (no exactly-once handler ever ran).
   */
  static async markReplay(nc: NatsConnection, bucket: string, stream: string, consumer: string, ackedUpTo: number): Promise<boolean> {
    let kv: KV;
    try {
      kv = await new Kvm(nc).open(bucket);
      await kv.status();
    } catch {
      return false;
    }
    await kv.put(IdempotencyStore.key(stream, consumer, REPLAY_MARKER), JSON.stringify({ upTo: ackedUpTo, at: Date.now() } satisfies ReplayMarker));
    return true;
  }

  /**
   * Read on each ask, not cached: asked only for a message meeting its own sequence's lease
   * (replays, crash redeliveries), and a cached marker could be one replay behind.
   */
  private async ackedBeforeReplay(key: string, seq: number, leaseTakenAt: number): Promise<boolean> {
    const entry = await this.kv.get(`${key.slice(0, key.lastIndexOf('.'))}.${REPLAY_MARKER}`);
    if (entry?.operation !== 'PUT') return false;
    const marker = entry.json<ReplayMarker>();
    return seq <= marker.upTo && leaseTakenAt < marker.at;
  }

  private async takeOver(key: string, seq: number, leaseMs: number, revision: number): Promise<LeaseResult> {
    try {
      return this.acquired(key, seq, await this.write(key, this.record('p', Date.now() + leaseMs, seq), revision));
    } catch (err) {
      if (!isWrongSequence(err)) throw err;
      return { kind: 'busy', retryInMs: 100 };
    }
  }

  private acquired(key: string, seq: number, revision: number): LeaseResult {
    this.active.set(key, seq);
    return { kind: 'acquired', revision };
  }

  private async markDone(key: string, revision: number): Promise<boolean> {
    const done = this.record('d', 0);
    try {
      await this.write(key, done, revision);
      return true;
    } catch (err) {
      if (!isWrongSequence(err)) throw err;
      await this.kv.put(key, done);
      return false;
    }
  }

  /**
   * Compare-and-set put of one record (`expected` 0: create), answered through the shared
   * inbox rather than the KV client's request per write. Resolves to the record's revision.
   */
  private async write(key: string, record: string, expected: number): Promise<number> {
    const hdrs = headers();
    hdrs.set(EXPECTED_SUBJECT_SEQUENCE, String(expected));
    const reply = await this.inbox.request(`$KV.${this.bucket}.${key}`, this.encoder.encode(record), hdrs);
    const ack = reply.json<{ seq?: number; error?: { code: number; err_code: number; description: string } }>();
    if (ack.error) throw new JetStreamApiError(ack.error);
    if (typeof ack.seq !== 'number') throw new Error(`unexpected reply to a ${this.bucket} write: ${reply.string()}`);
    return ack.seq;
  }

  private record(s: IdempotencyRecord['s'], until: number, seq?: number): string {
    return JSON.stringify({ s, u: until, o: this.owner, q: seq } satisfies IdempotencyRecord);
  }

  private rememberDone(key: string): void {
    if (this.recentlyDone.has(key)) return;
    // A ring of the last keys decides which to forget: evicting through the set's own iterator
    // walks the holes earlier deletions left behind (4% of CPU at 15k msg/s).
    const evicted = this.recentRing[this.recentNext];
    if (evicted !== undefined) this.recentlyDone.delete(evicted);
    this.recentRing[this.recentNext] = key;
    this.recentNext = (this.recentNext + 1) % MAX_RECENTLY_DONE;
    this.recentlyDone.add(key);
  }

  private remember(key: string, revision: number): void {
    this.unrecorded.set(key, revision);
    // Bounded: only completions that failed during an outage land here, and they clear on the
    // redelivery; the oldest go first if an outage outlasts many of them.
    if (this.unrecorded.size > MAX_UNRECORDED) this.unrecorded.delete(this.unrecorded.keys().next().value!);
  }
}

function isWrongSequence(err: unknown): boolean {
  return hasApiCode(err, ...WRONG_SEQUENCE);
}
