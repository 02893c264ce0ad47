import type { ArgumentMetadata, Logger, PipeTransform } from '@nestjs/common';
import type { JsMsg } from '@nats-io/jetstream';
import { BatchContext, type BatchMessage } from '../context/batch-context.js';
import { EventContext, type ConsumerDescriptor } from '../context/event-context.js';
import type { DeadLetterReason } from '../dead-letters/dead-letter-target.js';
import { DeadLetterRequired, RetryScheduled } from '../delivery/dispositions.js';
import type { HandledEvent, HandledObserver } from '../delivery/dispatcher.js';
import type { HandlerInvoker } from '../delivery/handler-invoker.js';
import { parkForGood } from '../delivery/dead-lettering.js';
import { NOT_DECODED, notifyHandled } from '../delivery/handled-observers.js';
import { bindInboxTransaction, unbindInboxTransaction } from '../delivery/inbox-transaction.js';
import { inboxConsumerOf, messageKeyOf } from '../delivery/message-key.js';
import { bindHandlerRuntime, type HandlerRuntime } from '../delivery/handler-runtime.js';
import type { Settlement } from '../delivery/settlement.js';
import { describeCause } from '../errors/jetstream-errors.js';
import type { InboxStore } from '../inbox/inbox-store.js';
import type { DatabaseHold } from '../inbox/database-hold.js';
import { DatabaseUnreachable } from '../inbox/inbox-errors.js';
import { isDatabaseUnavailable } from '../database/database-errors.js';
import type { PayloadDecoder } from '../serialization/payload-decoder.js';

export interface BatchDispatcherOptions {
  /** Binds and validates one payload (the batch's `payloadType` or the handler's `schema`); undefined: parsed JSON as is. */
  readonly itemPipe?: { readonly pipe: PipeTransform; readonly metadata: ArgumentMetadata };
  /** Inbox handlers: the table whose rows, one per message, commit in the batch's transaction. */
  readonly inbox?: InboxStore;
  /** Inbox handlers: where a batch whose transaction could not begin waits for the database. */
  readonly databaseHold?: DatabaseHold;
  readonly observer?: HandledObserver;
}

interface Prepared {
  readonly msg: JsMsg;
  readonly ctx: EventContext;
  readonly payload: unknown;
}

/** What one handler call came to: the batch it saw (with the failures it marked), or its throw. */
interface CallResult {
  readonly batch: BatchContext;
  readonly thrown?: { readonly error: unknown };
}

/**
 * Runs one batch through a batch handler's Nest pipeline (guards and interceptors once per
 * batch), then settles every message on its own through Settlement: a message that cannot be
 * decoded or validated is dead-lettered before the call and the rest are delivered; after the
 * call each message is acked, or its failure (the thrown error, or the one the handler marked
 * with `batch.fail`) goes through the same failure policy as a single message's would.
 *
 * With the inbox, messages whose key has a row are acked before the call without reaching the
 * handler (one query for the batch), and the call runs in one transaction that writes one row
 * per message it handled: the rows of messages marked failed are deleted before the commit, so
 * those are retried and the rest are acked after it. A throw (or a failed commit) rolls the
 * whole batch back onto the retry path.
 */
export class BatchDispatcher {
  private readonly descriptor: ConsumerDescriptor;
  private readonly inboxConsumer: string;

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
    this.inboxConsumer = inboxConsumerOf(descriptor);
    bindHandlerRuntime(this.descriptor, runtime);
  }

  /** Settles every message of `msgs` itself; never throws. */
  async dispatch(msgs: readonly JsMsg[]): Promise<void> {
    let delivered = msgs.map((msg) => this.contextOf(msg)).filter((d): d is Delivered => d !== undefined);
    if (this.options.inbox) delivered = await this.dropRecorded(this.options.inbox, delivered);
    const ready = await this.prepare(delivered);
    if (ready.length === 0) return;
    if (this.options.inbox) {
      await this.runInInbox(this.options.inbox, ready);
      return;
    }
    const { batch, thrown } = await this.call(ready, undefined);
    await this.settle(ready, batch, thrown);
  }

  private contextOf(msg: JsMsg): Delivered | undefined {
    try {
      return { msg, ctx: new EventContext(msg, this.descriptor) };
    } catch (err) {
      this.logger.error(`${this.descriptor.handlerId}: not a JetStream delivery, left unsettled: ${describeCause(err)}`);
      return undefined;
    }
  }

  /**
   * Acks, without a call, the messages whose key has an inbox row (a redelivery after a lost
   * ack, a copy, a batch whose process died between its commit and its acks); one query for the
   * batch. The inbox unreadable (the database down): every message fails as the transaction
   * would have, retried with backoff, and dead-lettered after its last attempt (a redrive of a
   * message that was handled after all finds its row then).
   */
  private async dropRecorded(inbox: InboxStore, delivered: Delivered[]): Promise<Delivered[]> {
    let recorded: Set<string>;
    try {
      recorded = await inbox.recordedAmong(this.inboxConsumer, [...new Set(delivered.map((d) => messageKeyOf(d.ctx)))]);
    } catch (err) {
      const hold = this.options.databaseHold;
      if (hold && isDatabaseUnavailable(err)) {
        // Nothing ran: the batch waits for the database, as the same attempt (see DatabaseHold).
        if (await hold.wait(err)) return this.dropRecorded(inbox, delivered);
        for (const d of delivered) this.settlement.nakImmediately(d.msg);
        return [];
      }
      this.logger.warn(`${this.descriptor.handlerId}: the inbox lookup of a batch of ${delivered.length} failed: ${describeCause(err)}`);
      await Promise.all(delivered.map((d) => this.settleFailure({ ...d, payload: undefined }, err)));
      return [];
    }
    return delivered.filter(({ msg, ctx }) => {
      if (!recorded.has(messageKeyOf(ctx))) return true;
      this.skipDuplicate(msg, ctx);
      return false;
    });
  }

  /**
   * One transaction for the batch. A key repeated within the batch runs once, with its first
   * message; the copies follow that message's outcome. A message whose key another instance
   * committed meanwhile is left out of the call and acked as a duplicate.
   */
  private async runInInbox(inbox: InboxStore, ready: Prepared[]): Promise<void> {
    const firsts = new Map<string, Prepared>();
    const copies: Prepared[] = [];
    for (const p of ready) {
      const key = messageKeyOf(p.ctx);
      if (firsts.has(key)) copies.push(p);
      else firsts.set(key, p);
    }
    let ran: { running: Prepared[]; result: CallResult } | undefined;
    let claimedKeys: ReadonlySet<string> = new Set();
    try {
      ran = await inbox.runBatch(this.inboxConsumer, [...firsts.keys()], async (tx, claimed) => {
        claimedKeys = claimed;
        const running = [...firsts.values()].filter((p) => claimed.has(messageKeyOf(p.ctx)));
        if (running.length === 0) return { result: undefined, unclaim: [] };
        const result = await this.call(running, tx);
        // Rethrown to roll back: nothing of a batch whose call threw may commit.
        if (result.thrown) throw new ThrownInBatch(running, result);
        const unclaim = running.filter((_, i) => BatchContext.failureOf(result.batch, i) !== undefined).map((p) => messageKeyOf(p.ctx));
        return { result: { running, result }, unclaim };
      });
    } catch (error) {
      if (error instanceof ThrownInBatch) {
        await this.settle(error.running, error.result.batch, error.result.thrown);
        await this.settleUnclaimed(ready, error.running, claimedKeys, error.result.thrown);
        return;
      }
      const hold = this.options.databaseHold;
      if (hold && error instanceof DatabaseUnreachable) {
        if (await hold.wait(error.cause)) return this.runInInbox(inbox, ready);
        for (const p of ready) this.settlement.nakImmediately(p.msg);
        return;
      }
      // The claim or the commit failed (the database down, a serialization failure): nothing
      // committed, or the redelivery finds the rows and acks; the whole batch is retried.
      this.logger.warn(`${this.descriptor.handlerId}: the inbox transaction of a batch of ${ready.length} failed: ${describeCause(error)}`);
      await Promise.all(ready.map((p) => this.settleFailure(p, error)));
      return;
    }
    if (!ran) {
      for (const p of ready) this.skipDuplicate(p.msg, p.ctx);
      return;
    }
    await this.settle(ran.running, ran.result.batch, undefined);
    await this.settleUnclaimed(ready, ran.running, claimedKeys, undefined, ran.result.batch);
  }

  /**
   * The messages of a transaction's batch that were not in the call: a key not claimed was
   * committed elsewhere (a duplicate); a copy of a key that ran follows that message's outcome.
   */
  private async settleUnclaimed(ready: Prepared[], running: Prepared[], claimed: ReadonlySet<string>, thrown: { error: unknown } | undefined, batch?: BatchContext): Promise<void> {
    const ranAt = new Map(running.map((p, i) => [messageKeyOf(p.ctx), i]));
    const inCall = new Set(running);
    await Promise.all(
      ready
        .filter((p) => !inCall.has(p))
        .map((p) => {
          const key = messageKeyOf(p.ctx);
          const at = ranAt.get(key);
          if (at === undefined) {
            if (!claimed.has(key)) this.skipDuplicate(p.msg, p.ctx);
            return undefined;
          }
          const failure = (batch && BatchContext.failureOf(batch, at)) ?? thrown;
          if (failure) return this.settleFailure(p, failure.error);
          this.skipDuplicate(p.msg, p.ctx);
          return undefined;
        }),
    );
  }

  /** The handler call, in the batch's span; `tx` is the inbox transaction, when there is one. */
  private async call(ready: Prepared[], tx: unknown): Promise<CallResult> {
    const items: BatchMessage[] = ready.map(({ payload, ctx }) => ({ payload, context: ctx }));
    const batch = new BatchContext(items, this.descriptor);
    const scope = this.runtime.instrumentation?.beginBatch(ready.map((p) => p.ctx));
    let thrown: { error: unknown } | undefined;
    if (tx !== undefined) bindInboxTransaction(batch, tx);
    try {
      const payloads = ready.map((p) => p.payload);
      await (scope ? scope.run(() => this.invoke(payloads, batch)) : this.invoke(payloads, batch));
    } catch (error) {
      thrown = { error: unwrap(error) };
    } finally {
      if (tx !== undefined) unbindInboxTransaction(batch);
    }
    const failed = ready.some((_, i) => BatchContext.failureOf(batch, i) !== undefined);
    if (thrown) scope?.fail(thrown.error);
    else if (failed) scope?.fail(new Error('some messages of the batch failed'));
    else scope?.end();
    return { batch, thrown };
  }

  /** After the call (and, with the inbox, its commit): each message acked or down the failure path. */
  private async settle(ready: Prepared[], batch: BatchContext, thrown: { error: unknown } | undefined): Promise<void> {
    // Acks go out synchronously; only failures (a dead-letter publish) need awaiting.
    const failing: Promise<void>[] = [];
    ready.forEach((p, i) => {
      const failure = BatchContext.failureOf(batch, i) ?? thrown;
      if (failure) failing.push(this.settleFailure(p, failure.error));
      else this.succeed(p);
    });
    if (failing.length > 0) await Promise.all(failing);
  }

  /**
   * The messages decoded and validated; the others settled alone (given up before, or invalid)
   * and left out. Decoding is synchronous: a promise per message only for an item pipe.
   */
  private async prepare(delivered: readonly Delivered[]): Promise<Prepared[]> {
    const decoded: Prepared[] = [];
    const settling: Promise<void>[] = [];
    for (const { msg, ctx } of delivered) {
      if (this.runtime.policy.exhaustedBeforeRun(ctx.attempt)) {
        settling.push(this.deadLetter(msg, ctx, new Error(`all ${ctx.attempt - 1} attempts failed earlier`), 'exhausted', undefined));
        continue;
      }
      try {
        decoded.push({ msg, ctx, payload: this.decoder.decode(msg) });
      } catch (error) {
        settling.push(this.rejectInvalid({ msg, ctx, payload: undefined }, error));
      }
    }
    const item = this.options.itemPipe;
    const ready = item
      ? (
          await Promise.all(
            decoded.map(async (p) => {
              try {
                return { ...p, payload: await item.pipe.transform(p.payload, item.metadata) };
              } catch (error) {
                await this.rejectInvalid(p, error);
                return undefined;
              }
            }),
          )
        ).filter((p): p is Prepared => p !== undefined)
      : decoded;
    await Promise.all(settling);
    return ready;
  }

  /** A message that cannot be decoded or validated: through the failure policy alone, before the call. */
  private async rejectInvalid(p: Prepared, error: unknown): Promise<void> {
    this.observe(p.ctx, p.payload, 'failed', error);
    await this.settleFailure(p, error, false);
  }

  /** The key is recorded in the inbox: its handler committed, here or elsewhere. */
  private skipDuplicate(msg: JsMsg, ctx: EventContext): void {
    this.settlement.ackDuplicate(msg, ctx);
    this.observe(ctx, NOT_DECODED, 'skipped');
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

interface Delivered {
  readonly msg: JsMsg;
  readonly ctx: EventContext;
}

/** Carries a thrown call out of the inbox transaction, which rolls back on it. */
class ThrownInBatch {
  constructor(
    readonly running: Prepared[],
    readonly result: CallResult,
  ) {}
}
