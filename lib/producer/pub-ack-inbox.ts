import { headers as natsHeaders, type Msg, type MsgHdrs } from '@nats-io/transport-node';
import { JetStreamApiError, JetStreamError, PubHeaders, type JetStreamPublishOptions } from '@nats-io/jetstream';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import { ReplyInbox, type ReplyHandling } from '../connection/reply-inbox.js';
import { toPublishError } from './publish-errors.js';

/** What the stream answered: where the message is stored, and whether it was already there. */
export interface PubAck {
  readonly stream: string;
  readonly seq: number;
  readonly duplicate: boolean;
}

type ApiError = ConstructorParameters<typeof JetStreamApiError>[0];

interface PubAckReply {
  stream?: string;
  seq: number;
  duplicate?: boolean;
  error?: ApiError;
}

/** The client's options this path turns into headers itself; any other goes through the client. */
const OWN_OPTIONS = new Set(['timeout', 'retries', 'msgID', 'headers', 'expect', 'ttl']);

/**
 * JetStream publishes through the module's reply inbox instead of the client's `js.publish`:
 * the PUB leaves at once with a reply subject on one shared subscription, and the stream's
 * PubAck settles the call by its token. The client builds, per publish, a request object, a
 * timer, a promise race and, once the request is done, a `RequestError` with its stack even
 * with `noAsyncTraces` (17-19% of the CPU of pipelined publishing in profiles). What a caller
 * sees is the client's behaviour: the same headers, resends with the same msg-id on a timeout
 * or no responders after the client's backoff, the same errors turned into the module's.
 */
export class PubAckInbox {
  private inbox?: ReplyInbox;
  private readonly handling: ReplyHandling<PubAck>;

  constructor(
    private readonly connection: JetStreamConnection,
    private readonly defaultTimeoutMs: number,
  ) {
    this.handling = {
      decode: toPubAck,
      explain: (err, call) =>
        toPublishError(err, { ...call, maxPayload: connection.nc.info?.max_payload, jsm: connection.jsm }),
    };
  }

  /** Resolves once stored; rejects with the module's publish errors. `options` as `js.publish` takes them. */
  publish(subject: string, data: Uint8Array, options: Partial<JetStreamPublishOptions>): Promise<PubAck> {
    for (const key in options) {
      // Options added later (schedules, say) keep working through the client until this path knows them.
      if (!OWN_OPTIONS.has(key)) return this.viaClient(subject, data, options);
    }
    // As the client: 0 (or none) means the default, and the client refuses a negative timeout itself.
    const timeoutMs = options.timeout || this.defaultTimeoutMs;
    if (!(timeoutMs > 0)) return this.viaClient(subject, data, options);
    const inbox = (this.inbox ??= new ReplyInbox(this.connection.nc, this.defaultTimeoutMs));
    return inbox.call(subject, data, publishHeaders(options), timeoutMs, options.retries || 1, this.handling);
  }

  private async viaClient(subject: string, data: Uint8Array, options: Partial<JetStreamPublishOptions>): Promise<PubAck> {
    try {
      const ack = await this.connection.js.publish(subject, data, options);
      return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate };
    } catch (err) {
      throw await toPublishError(err, {
        subject,
        timeoutMs: options.timeout ?? this.defaultTimeoutMs,
        attempts: options.retries ?? 1,
        bytes: data.length,
        maxPayload: this.connection.nc.info?.max_payload,
        jsm: this.connection.jsm,
      });
    }
  }
}

/** The headers the client's `js.publish` sends for these options (its `buildPublishHeaders`). */
function publishHeaders(options: Partial<JetStreamPublishOptions>): MsgHdrs | undefined {
  let h = options.headers;
  if (options.msgID) (h ??= natsHeaders()).set(PubHeaders.MsgIdHdr, options.msgID);
  const e = options.expect;
  if (e) {
    h ??= natsHeaders();
    if (e.lastMsgID) h.set(PubHeaders.ExpectedLastMsgIdHdr, e.lastMsgID);
    if (e.streamName) h.set(PubHeaders.ExpectedStreamHdr, e.streamName);
    if (typeof e.lastSequence === 'number') h.set(PubHeaders.ExpectedLastSeqHdr, `${e.lastSequence}`);
    if (typeof e.lastSubjectSequence === 'number') h.set(PubHeaders.ExpectedLastSubjectSequenceHdr, `${e.lastSubjectSequence}`);
    if (e.lastSubjectSequenceSubject) h.set(PubHeaders.ExpectedLastSubjectSequenceSubjectHdr, e.lastSubjectSequenceSubject);
  }
  if (options.ttl) (h ??= natsHeaders()).set(PubHeaders.MessageTTL, `${options.ttl}`);
  return h;
}

/** The stream's answer, read as the client's `js.publish` reads it: an API error, or a PubAck naming its stream. */
function toPubAck(msg: Msg): PubAck {
  const reply = msg.json<PubAckReply>();
  if (reply.error) throw new JetStreamApiError(reply.error);
  if (!reply.stream) throw new JetStreamError('invalid ack response');
  return { stream: reply.stream, seq: reply.seq, duplicate: reply.duplicate === true };
}
