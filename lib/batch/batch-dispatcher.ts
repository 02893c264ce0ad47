import type { ArgumentMetadata, Logger, PipeTransform } from '@nestjs/common';
import type { JsMsg } from '@nats-io/jetstream';
import { BatchContext, type BatchMessage } from '../context/batch-context.js';
import { EventContext, type ConsumerDescriptor } from '../context/event-context.js';
import type { DeadLetterReason } from '../dead-letters/dead-letter-target.js';
import { DeadLetterRequired, RetryScheduled } from '../delivery/dispositions.js';
import type { HandledEvent, HandledObserver } from '../delivery/dispatcher.js';
import type { HandlerInvoker } from '../delivery/handler-invoker.js';
import { parkForGood } from '../delivery/dead-lettering.js';
import { notifyHandled } from '../delivery/handled-observers.js';
import { bindHandlerRuntime, type HandlerRuntime } from '../delivery/handler-runtime.js';
import type { Settlement } from '../delivery/settlement.js';
import { describeCause } from '../errors/jetstream-errors.js';
import type { PayloadDecoder } from '../serialization/payload-decoder.js';

export interface BatchDispatcherOptions {
  /** Binds and validates one payload (the batch's `payloadType`); undefined: parsed JSON as is. */
  readonly itemPipe?: { readonly pipe: PipeTransform; readonly metadata: ArgumentMetadata };
  readonly observer?: HandledObserver;
}

interface Prepared {
  readonly msg: JsMsg;
  readonly ctx: EventContext;
  readonly payload: unknown;
}

/**
 * Runs one batch through a batch handler's Nest pipeline (guards and interceptors once per
 * batch), then settles every message on its own through Settlement: a message that cannot be
 * decoded or validated is dead-lettered before the call and the rest are delivered; after the
 * call each message is acked, or its failure (the thrown error, or the one the handler marked
 * with `batch.fail`) goes through the same failure policy as a single message's would.
 */
export class BatchDispatcher {
  private readonly descriptor: ConsumerDescriptor;

  constructor(
    descriptor: ConsumerDescriptor,
    private readonly runtime: HandlerRuntime,
    private readonly decoder: PayloadDecoder,
    private readonly invoke: HandlerInvoker,
    private readonly settlement: Settlement,
    private readonly options: BatchDispatcherOptions,
    private readonly logger: Logger,
  ) {
    this.descriptor = { ...descriptor };
    bindHandlerRuntime(this.descriptor, runtime);
  }

  /** Settles every message of `msgs` itself; never throws. */
  async dispatch(msgs: readonly JsMsg[]): Promise<void> {
    const prepared = await Promise.all(msgs.map((msg) => this.prepare(msg)));
    const ready = prepared.filter((p): p is Prepared => p !== undefined);
    if (ready.length === 0) return;
    const items: BatchMessage[] = ready.map(({ payload, ctx }) => ({ payload, context: ctx }));
    const batch = new BatchContext(items, this.descriptor);
    const scope = this.runtime.instrumentation?.beginBatch(ready.map((p) => p.ctx));
    let thrown: { error: unknown } | undefined;
    try {
      const payloads = ready.map((p) => p.payload);
      await (scope ? scope.run(() => this.invoke(payloads, batch)) : this.invoke(payloads, batch));
    } catch (error) {
      thrown = { error: unwrap(error) };
    }
    const failed = ready.some((_, i) => BatchContext.failureOf(batch, i) !== undefined);
    if (thrown) scope?.fail(thrown.error);
    else if (failed) scope?.fail(new Error('some messages of the batch failed'));
    else scope?.end();
    await Promise.all(
      ready.map((p, i) => {
        const failure = BatchContext.failureOf(batch, i) ?? thrown;
        return failure ? this.settleFailure(p, failure.error) : this.succeed(p);
      }),
    );
  }

  /** Decoded and validated, or settled alone (given up before, or invalid) and left out. */
  private async prepare(msg: JsMsg): Promise<Prepared | undefined> {
    let ctx: EventContext;
    try {
      ctx = new EventContext(msg, this.descriptor);
    } catch (err) {
      this.logger.error(`${this.descriptor.handlerId}: not a JetStream delivery, left unsettled: ${describeCause(err)}`);
      return undefined;
    }
    if (this.runtime.policy.exhaustedBeforeRun(ctx.attempt)) {
      await this.deadLetter(msg, ctx, new Error(`all ${ctx.attempt - 1} attempts failed earlier`), 'exhausted', undefined);
      return undefined;
    }
    let payload: unknown;
    try {
      payload = this.decoder.decode(msg);
      const item = this.options.itemPipe;
      if (item) payload = await item.pipe.transform(payload, item.metadata);
    } catch (error) {
      this.observe(ctx, payload, 'failed', error);
      await this.settleFailure({ msg, ctx, payload }, error, false);
      return undefined;
    }
    return { msg, ctx, payload };
  }

  private succeed({ msg, ctx, payload }: Prepared): void {
    this.settlement.ackAfterSuccess(msg, ctx);
    this.observe(ctx, payload, 'succeeded');
  }

  private async settleFailure({ msg, ctx, payload }: Prepared, error: unknown, observe = true): Promise<void> {
    if (observe) this.observe(ctx, payload, 'failed', error);
    const decision = this.runtime.policy.decide(error, ctx.attempt);
    if (decision.action === 'retry') {
      this.settlement.nakWithDelay(msg, ctx, error, decision.delayMs);
      return;
    }
    await this.deadLetter(msg, ctx, error, decision.reason, payload);
  }

  private async deadLetter(msg: JsMsg, ctx: EventContext, error: unknown, reason: DeadLetterReason, payload: unknown): Promise<void> {
    const parked = await parkForGood(this.runtime, this.settlement, msg, ctx, error, reason);
    if (!parked) return;
    const target = this.runtime.sink?.target;
    const seq = parked.deadLetterSeq;
    this.observe(ctx, payload, 'dead-lettered', error, {
      reason,
      ...(target && seq !== undefined ? { deadLetter: { stream: target.stream, subject: target.subject, sequence: seq } } : {}),
    });
  }

  private observe(ctx: EventContext, payload: unknown, outcome: HandledEvent['outcome'], error?: unknown, givenUp?: Pick<HandledEvent, 'reason' | 'deadLetter'>): void {
    notifyHandled(this.options.observer, ctx, payload, outcome, error, givenUp);
  }
}

// A user who lists the built-in retry or dead-letter interceptor on a batch handler gets them
// passed through (they act per message); their dispositions still carry the original failure.
function unwrap(error: unknown): unknown {
  return error instanceof RetryScheduled || error instanceof DeadLetterRequired ? error.failure : error;
}
