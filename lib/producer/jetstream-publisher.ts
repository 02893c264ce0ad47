import { Inject, Injectable, Optional } from '@nestjs/common';
import { headers as natsHeaders, Match, nuid, type MsgHdrs } from '@nats-io/transport-node';
import type { JetStreamPublishOptions } from '@nats-io/jetstream';
import { JetStreamConnection } from '../connection/jetstream-connection.js';
import { ConnectionClosedError, InvalidOptionsError } from '../errors/jetstream-errors.js';
import type { ResolvedModuleOptions } from '../options/jetstream-module-options.js';
import { JETSTREAM_RESOLVED_OPTIONS } from '../options/jetstream.tokens.js';
import { JetStreamObservability } from '../observability/jetstream-observability.js';
import type { PublishInstrumentation } from '../observability/instrumentation.js';
import { encodePayload, jsonCodec } from '../serialization/codec.js';
import { CONTENT_TYPE_HEADER, type Codec } from '../wire/codec.js';
import { PubAckInbox } from './pub-ack-inbox.js';
import { assertPublishSubject } from '../options/subject-validation.js';
import { requireServerFeature } from '../options/server-features.js';
import { messageTtl } from './message-ttl.js';
import { publishAtomicBatch } from './atomic-batch.js';
import { publishSchedule, type ScheduleOptions, type ScheduleResult } from './message-schedule.js';

export interface PublishExpectations {
  /** Fail unless the stream's last message has this msg-id. */
  lastMsgId?: string;
  /** Fail unless the subject is captured by this stream. */
  streamName?: string;
  /** Fail unless the stream's last sequence is this (optimistic concurrency). */
  lastSequence?: number;
  /** Fail unless the last sequence stored on this subject is this. */
  lastSubjectSequence?: number;
}

export interface PublishOptions {
  /**
   * Becomes `Nats-Msg-Id`: the stream drops a repeat of it within its duplicate window. Use a
   * business key to make retries of a whole operation safe. Default: one generated per call
   * and reused by this call's own resends, so a lost ack never stores the message twice.
   */
  msgId?: string;
  headers?: Record<string, string | readonly string[]>;
  /** Wait this long for the server's ack; default the module's `publishTimeoutMs`. */
  timeoutMs?: number;
  expect?: PublishExpectations;
  /**
   * Per-message TTL (`Nats-TTL`, nats-server 2.11+): the stream removes the message this long
   * after storing it. Milliseconds (at least 1000), a Go duration (`'90s'`, `'10m'`, `'1h30m'`)
   * or `'never'` (kept even past the stream's max_age). The stream needs `allow_msg_ttl: true`.
   */
  ttl?: number | string;
  /**
   * Codec of this publish; default the module's `codec` (JSON). A codec other than the module
   * default, or other than JSON, stamps `Content-Type` so consumers decode it. A `Uint8Array`
   * payload is sent as is, whatever the codec.
   */
  codec?: Codec;
}

export interface PublishResult {
  readonly stream: string;
  readonly seq: number;
  /** True when the stream already had this msg-id and stored nothing new. */
  readonly duplicate: boolean;
}

export interface BatchItem<T = unknown> {
  subject: string;
  payload: T;
  options?: PublishOptions;
}

export type BatchItemResult =
  | { readonly ok: true; readonly subject: string; readonly result: PublishResult }
  | { readonly ok: false; readonly subject: string; readonly error: Error };

export interface BatchOptions {
  /** Publishes awaiting their ack at once; default 256. Not used by atomic batches. */
  window?: number;
  /**
   * All items stored or none (nats-server 2.12+, a stream with `allow_atomic: true`, at most
   * 1000 items, all on one stream). Resolves with every item ok, or rejects with
   * AtomicBatchRejectedError; items may set msgId, headers and ttl only.
   */
  atomic?: boolean;
}

const DEFAULT_WINDOW = 256;

/**
 * Publishes to JetStream and resolves once the stream has stored the message. Payloads are
 * encoded by the publish's or the module's codec (JSON by default) unless they are a
 * `Uint8Array`, which goes out as is.
 */
@Injectable()
export class JetStreamPublisher {
  /** Metrics and tracing hooks; undefined when both are off, so a publish pays one check. */
  private readonly observed: PublishInstrumentation | undefined;
  /** The last subject that passed `assertPublishSubject`. */
  private lastSubject?: string;
  private readonly acks: PubAckInbox;
  /** Codecs whose `prepare` has resolved (the module's are prepared before the connection opens). */
  private readonly prepared = new WeakSet<Codec>();

  constructor(
    private readonly connection: JetStreamConnection,
    @Inject(JETSTREAM_RESOLVED_OPTIONS) private readonly options: ResolvedModuleOptions,
    @Optional() observability?: JetStreamObservability,
  ) {
    this.observed = observability?.publishing;
    this.acks = new PubAckInbox(connection, options.publishTimeoutMs);
  }

  /**
   * Not an async function: on the common path it hands back `send`'s promise instead of wrapping
   * it in one more (a promise and three microtask hops per publish). Bad input still rejects,
   * never throws.
   */
  publish<T>(subject: string, payload: T, options?: PublishOptions): Promise<PublishResult> {
    let data: Uint8Array;
    let clientOptions: Partial<JetStreamPublishOptions>;
    try {
      // Publishers send to a handful of subjects, often one in a loop: checked once in a row.
      // lastSubject holds only subjects that passed, so equality means checked (undefined aside).
      if (subject !== this.lastSubject || this.lastSubject === undefined) {
        assertPublishSubject(subject);
        this.lastSubject = subject;
      }
      const codec = options?.codec ?? this.options.codec;
      let contentType: string | undefined;
      if (codec === undefined || payload instanceof Uint8Array) {
        data = encodePayload(payload);
      } else {
        if (codec.prepare && codec !== this.options.codec && !this.prepared.has(codec)) return this.prepareThenPublish(codec, subject, payload, options!);
        data = codec.encode(payload);
        // Header-less means the consumer's default codec: stamp every choice that may differ from it.
        if (codec !== jsonCodec || options?.codec !== undefined) contentType = codec.contentType;
      }
      if (options?.ttl !== undefined) requireServerFeature(this.connection, 'messageTtl', `publish to "${subject}" with a ttl`);
      const timeoutMs = options?.timeoutMs ?? this.options.publishTimeoutMs;
      clientOptions = toClientOptions(options, timeoutMs, this.options.publishRetries + 1, contentType);
    } catch (err) {
      return Promise.reject(err);
    }
    const observed = this.observed;
    if (!observed) return this.send(subject, data, clientOptions);
    return this.publishObserved(observed, subject, data, clientOptions);
  }

  private async prepareThenPublish<T>(codec: Codec, subject: string, payload: T, options: PublishOptions): Promise<PublishResult> {
    await codec.prepare!();
    this.prepared.add(codec);
    return this.publish(subject, payload, options);
  }

  private async publishObserved(
    observed: PublishInstrumentation,
    subject: string,
    data: Uint8Array,
    clientOptions: Partial<JetStreamPublishOptions>,
  ): Promise<PublishResult> {
    const scope = observed.begin(subject, clientOptions.msgID!, clientOptions.headers);
    clientOptions.headers = scope.headers;
    let result: PublishResult;
    try {
      result = await this.send(subject, data, clientOptions);
    } catch (err) {
      scope.end(undefined, err);
      throw err;
    }
    scope.end(result);
    return result;
  }

  private send(subject: string, data: Uint8Array, clientOptions: Partial<JetStreamPublishOptions>): Promise<PublishResult> {
    if (this.connection.isClosed) return Promise.reject(new ConnectionClosedError(`publish to "${subject}"`));
    return this.acks.publish(subject, data, clientOptions);
  }

  /**
   * Stores a server-side schedule (nats-server 2.12+ for `at`, 2.14+ for `cron` and `every`):
   * the server publishes `payload` to `subject` when it fires, with no timer in the app, across
   * app and broker restarts. The stream capturing `subject` needs `allow_msg_schedules: true`.
   */
  schedule<T>(subject: string, payload: T, options: ScheduleOptions): Promise<ScheduleResult> {
    return publishSchedule(this.connection, (s, p, o) => this.publish(s, p, o), subject, payload, options);
  }

  /**
   * Publishes many messages with up to `window` acks outstanding. Messages leave in item order,
   * results come back in item order, and one failure does not stop the others.
   */
  async publishBatch<T>(items: readonly BatchItem<T>[], options?: BatchOptions): Promise<BatchItemResult[]> {
    if (!Array.isArray(items)) throw new InvalidOptionsError('publishBatch expects an array of { subject, payload, options? }');
    if (options?.atomic) return publishAtomicBatch(this.connection, items, this.options.publishTimeoutMs, this.observed);
    const window = options?.window ?? DEFAULT_WINDOW;
    if (!Number.isInteger(window) || window < 1) {
      throw new InvalidOptionsError(`publishBatch window must be an integer >= 1, got ${JSON.stringify(window)}`);
    }
    const results = new Array<BatchItemResult>(items.length);
    let next = 0;
    // Each lane takes the next index synchronously before it awaits, so sends stay in order.
    const lane = async (): Promise<void> => {
      while (next < items.length) {
        const index = next++;
        const item = items[index];
        const subject = item?.subject;
        try {
          results[index] = { ok: true, subject, result: await this.publish(subject, item.payload, item.options) };
        } catch (err) {
          results[index] = { ok: false, subject, error: err instanceof Error ? err : new Error(String(err)) };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, items.length) }, lane));
    return results;
  }
}

function toClientOptions(options: PublishOptions | undefined, timeout: number, attempts: number, contentType: string | undefined): Partial<JetStreamPublishOptions> {
  // The client resends only on timeout or no responders, and the msg-id makes that safe.
  const out: Partial<JetStreamPublishOptions> = { timeout, retries: attempts, msgID: options?.msgId ?? nuid.next() };
  if (contentType !== undefined) {
    out.headers = options?.headers ? toHeaders(options.headers) : natsHeaders();
    // A content type the caller set on purpose (bytes re-sent as they came) stays.
    if (!out.headers.has(CONTENT_TYPE_HEADER, Match.IgnoreCase)) out.headers.set(CONTENT_TYPE_HEADER, contentType);
  }
  if (!options) return out;
  if (options.headers && !out.headers) out.headers = toHeaders(options.headers);
  if (options.ttl !== undefined) out.ttl = messageTtl(options.ttl);
  if (options.expect) {
    const e = options.expect;
    out.expect = {};
    if (e.lastMsgId !== undefined) out.expect.lastMsgID = e.lastMsgId;
    if (e.streamName !== undefined) out.expect.streamName = e.streamName;
    if (e.lastSequence !== undefined) out.expect.lastSequence = e.lastSequence;
    if (e.lastSubjectSequence !== undefined) out.expect.lastSubjectSequence = e.lastSubjectSequence;
  }
  return out;
}

function toHeaders(record: Record<string, string | readonly string[]>): MsgHdrs {
  const h = natsHeaders();
  for (const [key, value] of Object.entries(record)) {
    if (typeof value === 'string') h.append(key, value);
    else for (const v of value) h.append(key, v);
  }
  return h;
}
