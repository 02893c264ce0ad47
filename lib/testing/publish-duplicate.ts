import type { INestApplicationContext } from '@nestjs/common';
import { IDEMPOTENCY_KEY_HEADER } from '../dead-letters/dead-letter-headers.js';
import { scopedToken } from '../module/connection-tokens.js';
import type { JetStreamPublisher, PublishOptions, PublishResult } from '../producer/jetstream-publisher.js';

export interface DuplicateOptions extends Omit<PublishOptions, 'msgId'> {
  /**
   * The identity of the event being copied: the `msgId` it was published with (or the value of
   * its `Jetstream-Idempotency-Key` header, when it carried one).
   */
  readonly msgId: string;
  readonly connection?: string;
}

let copies = 0;

/**
 * Publishes a copy of an event that was already published with `msgId`, so that it reaches the
 * handlers a second time: what a redelivery after a lost ack, a redrive or a producer's retry
 * beyond the duplicate window hands an exactly-once handler. Publishing the same `msgId` again
 * cannot test that: the stream drops the repeat before any consumer sees it. The copy gets a
 * `Nats-Msg-Id` of its own (the stream stores it) and the original's identity in
 * `Jetstream-Idempotency-Key`, which the exactly-once handler's idempotency check reads first.
 *
 *   await publisher.publish('payments.captured', payment, { msgId: 'pay-1' });
 *   await publishDuplicate(app, 'payments.captured', payment, { msgId: 'pay-1' });
 *   await handled.waitFor({ outcome: 'skipped' }); // the handler ran once
 */
export function publishDuplicate<T>(app: INestApplicationContext, subject: string, payload: T, options: DuplicateOptions): Promise<PublishResult> {
  const { msgId, connection, headers, ...publishOptions } = options;
  const publisher = app.get<JetStreamPublisher>(scopedToken('publisher', connection), { strict: false });
  return publisher.publish(subject, payload, {
    ...publishOptions,
    msgId: `${msgId}#copy-${process.pid}-${Date.now().toString(36)}-${++copies}`,
    headers: { ...headers, [IDEMPOTENCY_KEY_HEADER]: msgId },
  });
}
