import { headers as natsHeaders, nuid, type Msg, type MsgHdrs } from '@nats-io/transport-node';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { AtomicBatchRejectedError } from '../errors/server-feature-errors.js';
import { ApiCode } from '../errors/jetstream-api-codes.js';
import { requireServerFeature } from '../options/server-features.js';
import { assertPublishSubject } from '../options/subject-validation.js';
import { encodePayload } from '../serialization/codec.js';
import type { BatchItem, BatchItemResult } from './jetstream-publisher.js';
import type { PublishInstrumentation, PublishScope } from '../observability/instrumentation.js';
import { messageTtl } from './message-ttl.js';
import { toPublishError } from './publish-errors.js';

/** nats-server's cap on one atomic batch (ADR-50): larger ones are abandoned whole. */
export const MAX_ATOMIC_BATCH = 1_000;

// Options an item of an atomic batch may carry: the batch headers own the rest of the protocol.
const ITEM_OPTIONS = new Set(['msgId', 'headers', 'ttl']);

const HINTS: Readonly<Record<number, string>> = {
  [ApiCode.AtomicPublishDisabled]: '; the stream needs allow_atomic: true in its stream definition',
  // Messages of the batch that another stream captured never reach this one's commit.
  [ApiCode.AtomicBatchIncomplete]: '; every item must be captured by the same stream as the first',
};

interface BatchReply {
  stream?: string;
  seq?: number;
  count?: number;
  error?: { code?: number; err_code?: number; description?: string };
}

/**
 * Publishes the items as one atomic batch (nats-server 2.12+, ADR-50): the stream stores all of
 * them, in order and with consecutive sequences, or none. Every item is encoded and checked
 * before the first one leaves, so bad input sends nothing.
 */
export async function publishAtomicBatch(
  connection: JetStreamConnection,
  items: readonly BatchItem[],
  timeoutMs: number,
  observed?: PublishInstrumentation,
): Promise<BatchItemResult[]> {
  requireServerFeature(connection, 'atomicBatch', 'publishBatch({ atomic: true })');
  if (items.length === 0) return [];
  if (items.length > MAX_ATOMIC_BATCH) {
    throw new InvalidOptionsError(`an atomic batch holds at most ${MAX_ATOMIC_BATCH} messages (nats-server's limit), got ${items.length}; nothing was sent`);
  }
  const id = nuid.next();
  const prepared = items.map((item, index) => prepare(item, index, id, index === items.length - 1));
  // Begun once every item passed its checks, so bad input leaves no span or count behind. Each
  // item is one publish to the metrics and one PRODUCER span, whose context its headers carry.
  const scopes = observed ? prepared.map((p, index) => observed.begin(p.subject, items[index].options?.msgId ?? '', p.headers)) : undefined;
  try {
    const results = await sendAtomicBatch(connection, prepared, timeoutMs);
    if (scopes) results.forEach((r, i) => scopes[i].end(r.ok ? r.result : undefined));
    return results;
  } catch (err) {
    scopes?.forEach((scope: PublishScope) => scope.end(undefined, err));
    throw err;
  }
}

/** The first message and the commit wait for the server's answer; the ones between are plain publishes the commit accounts for. */
async function sendAtomicBatch(connection: JetStreamConnection, prepared: readonly PreparedItem[], timeoutMs: number): Promise<BatchItemResult[]> {
  const first = prepared[0];
  const reply = (m: Msg): BatchReply => (m.data.length ? (m.json() as BatchReply) : {});
  let answer: BatchReply;
  try {
    const opened = reply(await connection.nc.request(first.subject, first.data, { headers: first.headers, timeout: timeoutMs }));
    if (opened.error || prepared.length === 1) {
      answer = opened;
    } else {
      for (let i = 1; i < prepared.length - 1; i++) connection.nc.publish(prepared[i].subject, prepared[i].data, { headers: prepared[i].headers });
      const last = prepared[prepared.length - 1];
      answer = reply(await connection.nc.request(last.subject, last.data, { headers: last.headers, timeout: timeoutMs }));
    }
  } catch (err) {
    throw await toPublishError(err, {
      subject: first.subject,
      timeoutMs,
      attempts: 1,
      bytes: first.data.length,
      maxPayload: connection.nc.info?.max_payload,
      jsm: connection.jsm,
    });
  }
  if (answer.error || answer.seq === undefined || answer.stream === undefined) {
    const code = answer.error?.err_code;
    const reason = answer.error?.description ?? `the commit was answered without a sequence (${JSON.stringify(answer)})`;
    throw new AtomicBatchRejectedError(prepared.length, first.subject, code, reason + (code === undefined ? '' : (HINTS[code] ?? '')));
  }
  if (answer.count !== prepared.length) {
    throw new AtomicBatchRejectedError(prepared.length, first.subject, undefined, `the server committed ${answer.count} of ${prepared.length} messages`);
  }
  const firstSeq = answer.seq - prepared.length + 1;
  const stream = answer.stream;
  return prepared.map((p, i) => ({ ok: true, subject: p.subject, result: { stream, seq: firstSeq + i, duplicate: false } }));
}

interface PreparedItem {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: MsgHdrs;
}

function prepare(item: BatchItem, index: number, id: string, commit: boolean): PreparedItem {
  const where = `publishBatch item ${index}`;
  if (!item || typeof item !== 'object') throw new InvalidOptionsError(`${where}: expected { subject, payload, options? }`);
  assertPublishSubject(item.subject);
  const options = item.options ?? {};
  const unsupported = Object.keys(options).filter((k) => !ITEM_OPTIONS.has(k) && (options as Record<string, unknown>)[k] !== undefined);
  if (unsupported.length) throw new InvalidOptionsError(`${where}: ${unsupported.join(', ')} cannot be set on an atomic batch item (msgId, headers and ttl can)`);
  const h = natsHeaders();
  for (const [key, value] of Object.entries(options.headers ?? {})) {
    if (typeof value === 'string') h.append(key, value);
    else for (const v of value) h.append(key, v);
  }
  if (options.msgId !== undefined) h.set('Nats-Msg-Id', options.msgId);
  if (options.ttl !== undefined) h.set('Nats-TTL', messageTtl(options.ttl));
  h.set('Nats-Batch-Id', id);
  h.set('Nats-Batch-Sequence', String(index + 1));
  if (commit) h.set('Nats-Batch-Commit', '1');
  return { subject: item.subject, data: encodePayload(item.payload), headers: h };
}
