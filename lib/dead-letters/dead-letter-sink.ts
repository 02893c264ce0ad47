import type { JsMsg } from '@nats-io/jetstream';
import type { EventContext } from '../consumer/event-context.js';
import type { ResolvedDeadLetter } from '../decorators/on-event-options.js';
import type { DeadLetterReason } from '../delivery/failure-policy.js';
import type { JetStreamPublisher } from '../producer/jetstream-publisher.js';
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
    headers[H.OriginalSubject] = [msg.subject];
    headers[H.OriginalStream] = [ctx.stream];
    headers[H.OriginalSequence] = [String(msg.seq)];
    headers[H.Consumer] = [ctx.consumer];
    headers[H.Handler] = [ctx.handler];
    headers[H.Attempts] = [String(ctx.attempt)];
    headers[H.Reason] = [reason];
    headers[H.ErrorName] = [headerValue(errorName(error))];
    headers[H.ErrorMessage] = [headerValue(errorMessage(error)) || '(no message)'];
    headers[H.FailedAt] = [new Date().toISOString()];
    const ack = await this.publisher.publish(this.target.subject, msg.data, {
      msgId: `dlq:${ctx.stream}:${msg.seq}:${ctx.consumer}`,
      headers,
      expect: { streamName: this.target.stream },
    });
    return ack.seq;
  }
}

function errorName(error: unknown): string {
  if (error instanceof Error) return error.name || 'Error';
  return error === null ? 'null' : typeof error;
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  try {
    return typeof error === 'string' ? error : JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}
