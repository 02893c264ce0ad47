import type { JsMsg } from '@nats-io/jetstream';
import type { EventContext } from '../context/event-context.js';
import type { ResolvedDeadLetter } from '../decorators/on-event-options.js';
import type { DeadLetterReason } from './dead-letter-target.js';
import type { JetStreamPublisher } from '../producer/jetstream-publisher.js';
import { failureMessage, failureName } from '../errors/failure-description.js';
import { PayloadTooLargeError } from '../errors/jetstream-errors.js';
import { DeadLetterHeaders as H, headerValue, isCopiedHeader } from './dead-letter-headers.js';

/**
 * Publishes a failed message's original bytes to the dead-letter stream. The msg-id is fixed
 * per stream, sequence and consumer, so a crash between this publish and the term that follows
 * cannot park the same failure twice.
 */
export class DeadLetterSink {
  constructor(
    private readonly publisher: JetStreamPublisher,
    readonly target: ResolvedDeadLetter,
  ) {}

  async publish(msg: JsMsg, ctx: EventContext, error: unknown, reason: DeadLetterReason): Promise<number> {
    const headers: Record<string, string[]> = {};
    if (msg.headers) {
      for (const key of msg.headers.keys()) if (isCopiedHeader(key)) headers[key] = msg.headers.values(key);
    }
    const originalMsgId = ctx.msgId;
    if (originalMsgId) headers[H.OriginalMsgId] = [originalMsgId];
    // The published subject, not the stored one: a partitioned group stores its messages under
    // a partition token, and a redrive must publish where the publisher did.
    headers[H.OriginalSubject] = [ctx.subject];
    headers[H.OriginalStream] = [ctx.stream];
    headers[H.OriginalSequence] = [String(msg.seq)];
    headers[H.Consumer] = [ctx.consumer];
    headers[H.Handler] = [ctx.handler];
    headers[H.Attempts] = [String(ctx.attempt)];
    headers[H.Reason] = [reason];
    headers[H.ErrorName] = [headerValue(failureName(error))];
    headers[H.ErrorMessage] = [headerValue(failureMessage(error)) || '(no message)'];
    headers[H.FailedAt] = [new Date().toISOString()];
    const msgId = `dlq:${ctx.stream}:${msg.seq}:${ctx.consumer}`;
    const copy = (data: Uint8Array, hdrs: Record<string, string[]>) =>
      this.publisher.publish(this.target.subject, data, { msgId, headers: hdrs, expect: { streamName: this.target.stream } });
    try {
      return (await copy(msg.data, headers)).seq;
    } catch (err) {
      if (!(err instanceof PayloadTooLargeError)) throw err;
    }
    // A message near max_payload has no room for the dead-letter headers. Keep only ours, with
    // a short error, so the copy still holds the bytes; failing that, record the failure without
    // the bytes (the original stays in its stream while retention allows; redrive reads it there).
    // Retrying could never make the copy fit, and would keep the message from settling.
    const essential: Record<string, string[]> = {};
    for (const [key, values] of Object.entries(headers)) if (key.startsWith('Dlq-')) essential[key] = values;
    essential[H.ErrorMessage] = [headerValue(failureMessage(error), 200) || '(no message)'];
    try {
      return (await copy(msg.data, essential)).seq;
    } catch (err) {
      if (!(err instanceof PayloadTooLargeError)) throw err;
    }
    essential[H.PayloadOmitted] = [String(msg.data.length)];
    return (await copy(new Uint8Array(0), essential)).seq;
  }
}
