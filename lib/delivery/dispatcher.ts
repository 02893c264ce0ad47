import type { JsMsg } from '@nats-io/jetstream';
import { EventContext, type ConsumerDescriptor } from '../consumer/event-context.js';
import type { PayloadBinder } from '../serialization/payload-binder.js';
import { computeBackoffDelay, DEFAULT_BACKOFF } from './backoff.js';
import type { HandlerInvoker } from './handler-invoker.js';
import type { Settlement } from './settlement.js';

/**
 * Runs one message through one handler: bind the payload, invoke the Nest pipeline, settle.
 * Everything it needs is built once per handler, so a message costs one context object.
 */
export class Dispatcher {
  constructor(
    private readonly descriptor: ConsumerDescriptor,
    private readonly bind: PayloadBinder,
    private readonly invoke: HandlerInvoker,
    private readonly settlement: Settlement,
  ) {}

  async dispatch(msg: JsMsg): Promise<void> {
    const ctx = new EventContext(msg, this.descriptor);
    let payload: unknown;
    try {
      payload = this.bind(msg.data);
      if (payload instanceof Promise) payload = await payload;
    } catch (err) {
      this.settlement.reject(msg, ctx, err);
      return;
    }
    try {
      await this.invoke(payload, ctx);
    } catch (err) {
      this.settlement.retry(msg, ctx, err, computeBackoffDelay(ctx.deliveryCount, DEFAULT_BACKOFF));
      return;
    }
    this.settlement.succeed(msg);
  }
}
