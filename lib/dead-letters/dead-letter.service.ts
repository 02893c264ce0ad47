import { Injectable } from '@nestjs/common';
import { DeliverPolicy, type StoredMsg } from '@nats-io/jetstream';
import { JetStreamConnection } from '../connection/jetstream-connection.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { JetStreamPublisher, type PublishResult } from '../producer/jetstream-publisher.js';
import { DeadLetterHeaders as H, IDEMPOTENCY_KEY_HEADER, isCopiedHeader } from './dead-letter-headers.js';
import { DEFAULT_DEAD_LETTER_STREAM } from './dead-letter-target.js';
import { ApiCode, hasApiCode } from '../errors/jetstream-api-codes.js';

export interface DeadLetter {
  /** Sequence in the dead-letter stream: the handle for peek, redrive and delete. */
  readonly seq: number;
  readonly deadLetterStream: string;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: Readonly<Record<string, string[]>>;
  readonly originalSubject: string;
  readonly originalStream: string;
  readonly originalSequence: number;
  readonly originalMsgId: string | undefined;
  readonly consumer: string;
  readonly handler: string | undefined;
  readonly attempts: number;
  readonly reason: string;
  readonly error: { readonly name: string; readonly message: string };
  readonly failedAt: Date | undefined;
  readonly redriveCount: number;
  /**
   * Set when the payload (this many bytes) was too large to copy next to the dead-letter
   * headers: `data` is then empty and the bytes live only in the original stream.
   */
  readonly payloadOmittedBytes: number | undefined;
  /** The payload as text (JSON payloads read as they were sent). */
  text(): string;
}

export interface DeadLetterFilter {
  /** Dead-letter stream; default `DLQ`. */
  stream?: string;
  /** Subject filter inside the dead-letter stream, e.g. `dlq.ORDERS.billing`; default all. */
  subject?: string;
  originalStream?: string;
  consumer?: string;
  originalSubject?: string;
  /** At most this many; default 1 000. */
  limit?: number;
}

/** Browse, redrive and purge dead letters. */
@Injectable()
export class DeadLetterService {
  constructor(
    private readonly connection: JetStreamConnection,
    private readonly publisher: JetStreamPublisher,
  ) {}

  async list(filter: DeadLetterFilter = {}): Promise<DeadLetter[]> {
    const stream = filter.stream ?? DEFAULT_DEAD_LETTER_STREAM;
    const limit = filter.limit ?? 1_000;
    if (!Number.isInteger(limit) || limit < 1) throw new InvalidOptionsError(`limit must be an integer >= 1, got ${limit}`);
    const info = await this.connection.jsm.streams.info(stream);
    if (info.state.messages === 0) return [];
    // An ordered consumer reads without acks; it is deleted once read.
    const consumer = await this.connection.js.consumers.get(stream, {
      filter_subjects: filter.subject ? [filter.subject] : undefined,
      deliver_policy: DeliverPolicy.All,
    });
    const out: DeadLetter[] = [];
    const lastSeq = info.state.last_seq;
    try {
      for (;;) {
        const batch = await consumer.fetch({ max_messages: 256, expires: 1_000 });
        let got = 0;
        let pending = 0;
        for await (const m of batch) {
          got++;
          pending = m.info.pending;
          const letter = toDeadLetter(stream, m.seq, m.subject, m.data, m.headers);
          if (matches(letter, filter)) out.push(letter);
          if (out.length >= limit || m.seq >= lastSeq) break;
        }
        if (got === 0 || pending === 0 || out.length >= limit || out.some((l) => l.seq >= lastSeq)) break;
      }
    } finally {
      // An ordered consumer only expires after its inactivity threshold; a dashboard polling
      // list() would otherwise pile them up until the server's consumer limit refuses more.
      await consumer.delete().catch(() => false);
    }
    return out.slice(0, limit);
  }

  /** One dead letter by its sequence, or undefined when it is gone. */
  async peek(seq: number, stream = DEFAULT_DEAD_LETTER_STREAM): Promise<DeadLetter | undefined> {
    const stored = await this.get(stream, seq);
    return stored ? fromStored(stream, stored) : undefined;
  }

  /**
   * Publishes the original bytes and headers back to the original subject, then removes the
   * dead letter. The new msg-id keeps the stream from dropping it as a duplicate; the
   * idempotency key keeps exactly-once consumers that already handled it from running again.
   */
  async redrive(seq: number, stream = DEFAULT_DEAD_LETTER_STREAM): Promise<PublishResult> {
    const letter = await this.peek(seq, stream);
    if (!letter) throw new InvalidOptionsError(`Dead letter ${stream} seq ${seq} does not exist`);
    const headers: Record<string, string[]> = {};
    for (const [key, values] of Object.entries(letter.headers)) {
      if (!key.startsWith('Dlq-') && isCopiedHeader(key)) headers[key] = values;
    }
    const identity = letter.originalMsgId ?? `${letter.originalStream}:${letter.originalSequence}`;
    headers[IDEMPOTENCY_KEY_HEADER] ??= [identity];
    headers[H.RedriveCount] = [String(letter.redriveCount + 1)];
    const data = letter.payloadOmittedBytes === undefined ? letter.data : await this.originalPayload(letter);
    const result = await this.publisher.publish(letter.originalSubject, data, {
      msgId: `${identity}:redrive:${stream}:${seq}`,
      headers,
    });
    await this.delete(seq, stream);
    return result;
  }

  /** The bytes of a dead letter stored without them, read back from the original stream. */
  private async originalPayload(letter: DeadLetter): Promise<Uint8Array> {
    let original: StoredMsg | null = null;
    try {
      original = await this.connection.jsm.streams.getMessage(letter.originalStream, { seq: letter.originalSequence });
    } catch (err) {
      if (!hasApiCode(err, ApiCode.NoMessageFound, ApiCode.StreamNotFound)) throw err;
    }
    if (!original) {
      throw new InvalidOptionsError(
        `Dead letter ${letter.deadLetterStream} seq ${letter.seq} has no payload (its ${letter.payloadOmittedBytes} bytes did not fit next to the dead-letter headers) and the original, stream "${letter.originalStream}" seq ${letter.originalSequence}, is gone; it cannot be redriven`,
      );
    }
    return original.data;
  }

  /** Redrives every dead letter matching the filter; returns how many went back. */
  async redriveAll(filter: DeadLetterFilter = {}): Promise<number> {
    const letters = await this.list(filter);
    for (const letter of letters) await this.redrive(letter.seq, letter.deadLetterStream);
    return letters.length;
  }

  async delete(seq: number, stream = DEFAULT_DEAD_LETTER_STREAM): Promise<boolean> {
    try {
      return await this.connection.jsm.streams.deleteMessage(stream, seq, false);
    } catch (err) {
      if (hasApiCode(err, ApiCode.NoMessageFound)) return false;
      throw err;
    }
  }

  /** Removes dead letters: all of a subject when only `subject` is given, else those matching. */
  async purge(filter: DeadLetterFilter = {}): Promise<number> {
    const stream = filter.stream ?? DEFAULT_DEAD_LETTER_STREAM;
    if (!filter.originalStream && !filter.consumer && !filter.originalSubject) {
      const res = await this.connection.jsm.streams.purge(stream, filter.subject ? { filter: filter.subject } : undefined);
      return res.purged;
    }
    const letters = await this.list(filter);
    let removed = 0;
    for (const letter of letters) if (await this.delete(letter.seq, stream)) removed++;
    return removed;
  }

  private async get(stream: string, seq: number): Promise<StoredMsg | undefined> {
    try {
      return (await this.connection.jsm.streams.getMessage(stream, { seq })) ?? undefined;
    } catch (err) {
      if (hasApiCode(err, ApiCode.NoMessageFound)) return undefined;
      throw err;
    }
  }
}

function matches(letter: DeadLetter, filter: DeadLetterFilter): boolean {
  return (
    (!filter.originalStream || letter.originalStream === filter.originalStream) &&
    (!filter.consumer || letter.consumer === filter.consumer) &&
    (!filter.originalSubject || letter.originalSubject === filter.originalSubject)
  );
}

function fromStored(stream: string, m: StoredMsg): DeadLetter {
  return toDeadLetter(stream, m.seq, m.subject, m.data, m.header);
}

interface HeaderSource {
  keys(): string[];
  values(key: string): string[];
}

function toDeadLetter(stream: string, seq: number, subject: string, data: Uint8Array, hdrs: HeaderSource | undefined): DeadLetter {
  const headers: Record<string, string[]> = {};
  if (hdrs) for (const key of hdrs.keys()) headers[key] = hdrs.values(key);
  const one = (name: string) => headers[name]?.[0];
  const failedAt = one(H.FailedAt);
  return {
    seq,
    deadLetterStream: stream,
    subject,
    data,
    headers,
    originalSubject: one(H.OriginalSubject) ?? '',
    originalStream: one(H.OriginalStream) ?? '',
    originalSequence: Number(one(H.OriginalSequence) ?? 0),
    originalMsgId: one(H.OriginalMsgId),
    consumer: one(H.Consumer) ?? '',
    handler: one(H.Handler),
    attempts: Number(one(H.Attempts) ?? 0),
    reason: one(H.Reason) ?? '',
    error: { name: one(H.ErrorName) ?? '', message: one(H.ErrorMessage) ?? '' },
    failedAt: failedAt ? new Date(failedAt) : undefined,
    redriveCount: Number(one(H.RedriveCount) ?? 0),
    payloadOmittedBytes: one(H.PayloadOmitted) === undefined ? undefined : Number(one(H.PayloadOmitted)),
    text: () => new TextDecoder().decode(data),
  };
}
