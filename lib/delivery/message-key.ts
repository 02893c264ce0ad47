import type { ConsumerDescriptor, EventContext } from '../context/event-context.js';
import { IDEMPOTENCY_KEY_HEADER } from '../dead-letters/dead-letter-headers.js';

/** The key exactly-once and the inbox dedupe on: a redrive's key, else the publisher's msg-id, else the stream position. */
export function messageKeyOf(ctx: EventContext): string {
  return ctx.header(IDEMPOTENCY_KEY_HEADER) ?? ctx.msgId ?? `${ctx.stream}:${ctx.sequence}`;
}

/** The inbox rows' consumer column: a durable's name is unique per stream, and stream names hold no dot. */
export function inboxConsumerOf(descriptor: Pick<ConsumerDescriptor, 'stream' | 'consumer'>): string {
  return `${descriptor.stream}.${descriptor.consumer}`;
}
