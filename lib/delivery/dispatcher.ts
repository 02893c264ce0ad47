import type { Logger } from '@nestjs/common';
import type { JsMsg } from '@nats-io/jetstream';
import { EventContext, type ConsumerDescriptor } from '../context/event-context.js';
import type { DeliveryMode } from '../decorators/on-event-options.js';
import { describeCause } from '../errors/jetstream-errors.js';
import type { PayloadDecoder } from '../serialization/payload-decoder.js';
import { BreakerHeld, DeadLettered, DeadLetterRequired, RetryScheduled } from './dispositions.js';
import type { DeadLetterReason } from '../dead-letters/dead-letter-target.js';
import type { HandlerInvoker } from './handler-invoker.js';
import { bindHandlerRuntime, decideFailure, type HandlerRuntime } from './handler-runtime.js';
import { withHandlerTimeout } from './handler-timeout.js';
import { parkForGood } from './dead-lettering.js';
import { NOT_DECODED, notifyHandled } from './handled-observers.js';

export { NOT_DECODED };
import { IdempotencyStore, type LeaseResult } from './idempotency-store.js';
import type { Settlement } from './settlement.js';
import { inboxConsumerOf, messageKeyOf } from './message-key.js';
import { INBOX_DUPLICATE, type InboxStore } from '../inbox/inbox-store.js';
import type { DatabaseHold } from '../inbox/database-hold.js';
import { DatabaseUnreachable } from '../inbox/inbox-errors.js';
import { bindInboxTransaction, unbindInboxTransaction } from './inbox-transaction.js';

/**
 * What a handler call came to, for observers (tests, metrics): never used to settle. A message
 * given up on yields one more event after its last `failed` call: `dead-lettered`, with the
 * reason (also when no handler ran, e.g. attempts used up by crashes).
 */
export interface HandledEvent {
  readonly handlerId: string;
  readonly subject: string;
  readonly stream: string;
  readonly sequence: number;
  readonly attempt: number;
  /** The payload as the pipeline received it (parsed JSON, or bytes for `Uint8Array` handlers). */
  readonly payload: unknown;
  readonly outcome: 'succeeded' | 'failed' | 'skipped' | 'dead-lettered';
  readonly error?: unknown;
  /** Why the message was given up on; only on `dead-lettered`. */
  readonly reason?: DeadLetterReason;
  /**
   * Where its copy went; only on `dead-lettered`, and undefined there when the handler has no
   * dead-letter stream (the message was terminated, and only the logs keep it).
   */
  readonly deadLetter?: { readonly stream: string; readonly subject: string; readonly sequence: number };
}

export interface HandledObserver {
  /** False when nobody listens, so the hot path builds no event. */
  readonly active: boolean;
  notify(event: HandledEvent): void;
}

export interface DispatcherOptions {
  readonly delivery: DeliveryMode;
  /** Ordered lanes retry in place instead of giving the message back, so order holds. */
  readonly retryInPlace: boolean;
  readonly ackWaitMs: number;
  /** A handler call running longer fails with HandlerTimeoutError; undefined: no limit. */
  readonly timeoutMs?: number;
  readonly idempotency?: { readonly store: IdempotencyStore; readonly leaseMs: number };
  /** Inbox handlers: the table whose row commits in the handler's transaction (no KV lease then). */
  readonly inbox?: InboxStore;
  /** Inbox handlers: where an attempt whose transaction could not begin waits for the database. */
  readonly databaseHold?: DatabaseHold;
  readonly observer?: HandledObserver;
}

/**
 * Runs one message through one handler: the delivery mode's guard before the call, the Nest
 * pipeline (guards, retry and dead-letter interceptors, the user's enhancers, the handler), and
 * the outcome handed to Settlement. Built once per handler; a message costs one context.
 */
export class Dispatcher {
  private readonly descriptor: ConsumerDescriptor;
  /** The inbox rows' consumer column. */
  private readonly inboxConsumer: string;

  constructor(
    descriptor: ConsumerDescriptor,
    private readonly runtime: HandlerRuntime,
    private readonly decoder: PayloadDecoder,
    private readonly invoke: HandlerInvoker,
    private readonly settlement: Settlement,
    private readonly options: DispatcherOptions,
    private readonly logger: Logger,
  ) {
    this.descriptor = { ...descriptor };
    this.inboxConsumer = inboxConsumerOf(descriptor);
    bindHandlerRuntime(this.descriptor, runtime);
  }

  /**
   * `decoded`: the payload already parsed by an ordering lane, so JSON is parsed once. Not an
   * async function: it hands back the mode's own promise instead of wrapping it in another one
   * (a promise and three microtask hops per message). A synchronous throw (a message that is not
   * a JetStream delivery) reaches the caller's `try` as it would as a rejection.
   */
  dispatch(msg: JsMsg, decoded: unknown = NOT_DECODED): Promise<void> {
    const ctx = new EventContext(msg, this.descriptor);
    if (this.runtime.policy.exhaustedBeforeRun(ctx.attempt)) return this.giveUpBeforeRun(msg, ctx);
    if (this.options.inbox) return this.throughInbox(msg, ctx, decoded);
    switch (this.options.delivery) {
      case 'at-most-once':
        return this.atMostOnce(msg, ctx, decoded);
      case 'exactly-once':
        return this.exactlyOnce(msg, ctx, decoded);
      default:
        return this.atLeastOnce(msg, ctx, decoded);
    }
  }

  /**
   * An earlier dead-letter publish failed after the last attempt, or the attempts ended in
   * crashes: do not run the handler again.
   */
  private async giveUpBeforeRun(msg: JsMsg, ctx: EventContext): Promise<void> {
    if (this.options.inbox) {
      // Attempts used up by crashes after the commit: the handler did its work, it is no dead letter.
      let handled: boolean;
      try {
        handled = await this.options.inbox.recorded(this.inboxConsumer, messageKeyOf(ctx));
      } catch (err) {
        this.settlement.nakWithDelay(msg, ctx, err, this.runtime.policy.deadLetterRetryDelay(ctx.attempt), 'inbox unavailable');
        return;
      }
      if (handled) {
        this.settlement.ackDuplicate(msg, ctx);
        this.observe(ctx, NOT_DECODED, 'skipped');
        return;
      }
    } else if (this.options.delivery === 'exactly-once' && !(await this.settleOwnLease(msg, ctx))) return;
    await this.deadLetter(msg, ctx, new Error(`all ${ctx.attempt - 1} attempts failed earlier`), 'exhausted', NOT_DECODED);
  }

  private async atLeastOnce(msg: JsMsg, ctx: EventContext, decoded: unknown): Promise<void> {
    const outcome = await this.run(msg, ctx, decoded);
    if (outcome === HANDED_BACK) this.settlement.nakImmediately(msg);
    else if (outcome instanceof Failure) await this.settleFailure(msg, ctx, outcome);
    else this.settlement.ackAfterSuccess(msg, ctx);
  }

  /**
   * The handler's transaction holds the inbox row: it commits with the handler's writes, and the
   * message is acked after the commit. A plain ack is enough: if it is lost, the redelivery finds
   * the row and is acked as a duplicate, so no KV lease and no confirmed ack are needed.
   */
  private async throughInbox(msg: JsMsg, ctx: EventContext, decoded: unknown): Promise<void> {
    const outcome = await this.run(msg, ctx, decoded);
    if (outcome === SUCCESS) this.settlement.ackAfterSuccess(msg, ctx);
    else if (outcome === HANDED_BACK) this.settlement.nakImmediately(msg);
    else if (outcome === DUPLICATE) {
      this.settlement.ackDuplicate(msg, ctx);
      this.observe(ctx, NOT_DECODED, 'skipped');
    } else await this.settleFailure(msg, ctx, outcome);
  }

  private async atMostOnce(msg: JsMsg, ctx: EventContext, decoded: unknown): Promise<void> {
    if (!(await this.settlement.ackConfirmedBeforeRun(msg, ctx))) return;
    const outcome = await this.run(msg, ctx, decoded);
    if (!(outcome instanceof Failure)) {
      this.settlement.reportSuccess(ctx);
      return;
    }
    // Already acked: a failure is reported (and parked as a copy when a DLQ is set), never retried.
    const parked = outcome.error;
    if (parked instanceof DeadLettered) {
      this.settlement.reportDeadLettered(ctx, parked);
      this.observeDeadLettered(ctx, outcome.payload, parked.failure, parked.reason, parked.deadLetterSeq);
      return;
    }
    const error = unwrap(parked);
    const sink = this.runtime.sink;
    if (sink) {
      try {
        const seq = await sink.publish(msg, ctx, error, 'at-most-once');
        this.settlement.reportDeadLettered(ctx, new DeadLettered(error, 'at-most-once', seq));
        this.observeDeadLettered(ctx, outcome.payload, error, 'at-most-once', seq);
        return;
      } catch (publishError) {
        this.logger.error(`${ctx.handler}: dead-letter copy of seq ${msg.seq} failed: ${describeCause(publishError)}`);
      }
    }
    this.settlement.reportLost(ctx, error);
  }

  private async exactlyOnce(msg: JsMsg, ctx: EventContext, decoded: unknown): Promise<void> {
    const idem = this.options.idempotency!;
    const key = this.idempotencyKey(ctx);
    let lease;
    try {
      lease = await this.waitForLease(msg, ctx, key);
    } catch (err) {
      await this.storeUnavailable(msg, ctx, err, 'idempotency store unavailable');
      return;
    }
    if (lease.kind === 'done') {
      this.settlement.ackDuplicate(msg, ctx);
      this.observe(ctx, NOT_DECODED, 'skipped');
      return;
    }
    if (lease.kind === 'busy') {
      this.settlement.nakWhileLeased(msg, lease.retryInMs);
      return;
    }
    const outcome = await this.run(msg, ctx, decoded);
    if (outcome instanceof Failure || outcome === HANDED_BACK) {
      try {
        await idem.store.release(key, lease.revision);
      } catch (err) {
        // A record left behind would make a later copy of this message (a redrive, a repeated
        // publish) look like a duplicate of a success. The redelivery releases it.
        this.settlement.nakWithDelay(msg, ctx, err, this.runtime.policy.deadLetterRetryDelay(ctx.attempt), 'could not release the idempotency record');
        return;
      }
      if (outcome === HANDED_BACK) this.settlement.nakImmediately(msg);
      else await this.settleFailure(msg, ctx, outcome);
      return;
    }
    // The done mark first, confirmed, then the ack: a redelivery (an ack the server lost, here
    // or on another instance) finds "done" in the shared record. Acking first would leave a
    // window where only this process knows the handler ran.
    let completed;
    try {
      completed = await idem.store.complete(key, lease.revision);
    } catch (err) {
      // Not recorded: the store remembers the key, and the redelivery records it.
      this.settlement.nakWithDelay(msg, ctx, err, this.runtime.policy.deadLetterRetryDelay(ctx.attempt), 'could not record completion');
      return;
    }
    if (completed === 'lost') {
      this.logger.warn(`${ctx.handler}: lease on seq ${msg.seq} was taken over while the handler ran; it may have run twice (a pause longer than ackWaitMs?)`);
    }
    this.settlement.ackAfterSuccess(msg, ctx);
  }

  /**
   * Takes the lease, waiting here while a live holder runs the message: the delivery is kept
   * (its ack wait extended) instead of handed back, so waiting does not use up deliveries,
   * which count against the retry budget. After `leaseWaitLimit` it is handed back.
   */
  private async waitForLease(msg: JsMsg, ctx: EventContext, key: string): Promise<LeaseResult> {
    const { store, leaseMs } = this.options.idempotency!;
    const until = Date.now() + LEASE_WAIT_LEASES * leaseMs;
    const beat = Math.max(50, Math.floor(this.options.ackWaitMs / 3));
    // Looks again soon (a holder usually finishes within milliseconds), then less often.
    let pollMs = 25;
    for (;;) {
      const lease = await store.acquire(key, msg.seq, leaseMs);
      if (lease.kind !== 'busy' || Date.now() >= until) return lease;
      await new Promise((resolve) => setTimeout(resolve, Math.min(lease.retryInMs, beat, pollMs)));
      pollMs = Math.min(pollMs * 2, MAX_LEASE_POLL_MS);
      ctx.working();
    }
  }

  /**
   * The idempotency bucket cannot be reached: retried with backoff; on the last attempt the
   * message is dead-lettered as `idempotency-unavailable` rather than left to run into the
   * consumer's max_deliver, where the server would silently stop delivering it.
   */
  private async storeUnavailable(msg: JsMsg, ctx: EventContext, err: unknown, note: string): Promise<void> {
    if (!this.runtime.policy.lastAttempt(ctx.attempt)) {
      this.settlement.nakWithDelay(msg, ctx, err, this.runtime.policy.deadLetterRetryDelay(ctx.attempt), note);
      return;
    }
    if (this.options.idempotency!.store.handledHere(this.idempotencyKey(ctx))) {
      // The handler ran here; only its done mark is missing. Dead-lettering it would invite a
      // redrive to run it again: ack it, and say what is unrecorded.
      this.logger.warn(`${ctx.handler}: seq ${msg.seq} was handled but its done mark could not be written (${describeCause(err)}); acking it unrecorded`);
      this.settlement.ackDuplicate(msg, ctx);
      return;
    }
    await this.deadLetter(msg, ctx, new Error(`${note}: ${describeCause(err)}`), 'idempotency-unavailable', NOT_DECODED);
  }

  /**
   * A message given up without running may still hold its key's lease from an attempt that
   * crashed; left there, it would make the redrive of its dead letter look like a duplicate.
   * But a key that is done was handled (ack it), and a live lease is a call still running (its
   * ack wait ran out): wait for it, never take it from under it. False when settled here.
   */
  private async settleOwnLease(msg: JsMsg, ctx: EventContext): Promise<boolean> {
    const { store, leaseMs } = this.options.idempotency!;
    const key = this.idempotencyKey(ctx);
    try {
      const until = Date.now() + LEASE_WAIT_LEASES * leaseMs;
      const beat = Math.max(50, Math.floor(this.options.ackWaitMs / 3));
      for (;;) {
        const state = await store.holderState(key);
        if (state === 'done') {
          this.settlement.ackDuplicate(msg, ctx);
          this.observe(ctx, NOT_DECODED, 'skipped');
          return false;
        }
        if (state === 'free') break;
        if (Date.now() >= until) {
          this.settlement.nakWhileLeased(msg, beat);
          return false;
        }
        await new Promise((resolve) => setTimeout(resolve, beat));
        ctx.working();
      }
      await store.releaseIfHeld(key, msg.seq);
      return true;
    } catch (err) {
      await this.storeUnavailable(msg, ctx, err, 'could not release the idempotency record');
      return false;
    }
  }

  private idempotencyKey(ctx: EventContext): string {
    return IdempotencyStore.key(ctx.stream, ctx.consumer, messageKeyOf(ctx));
  }

  /**
   * Decodes and invokes the pipeline (which binds and validates); never throws. With a circuit
   * breaker, each call first waits to be admitted, and a failure the breaker holds runs again
   * once admitted, as the same attempt: the server's delivery count does not move.
   */
  private async run(msg: JsMsg, ctx: EventContext, decoded: unknown): Promise<Outcome> {
    const breaker = this.runtime.breaker;
    for (;;) {
      const admission = breaker?.admission();
      if (admission && !(await admission)) return HANDED_BACK;
      let result: unknown;
      let payload: unknown = decoded;
      const scope = this.runtime.instrumentation?.begin(ctx);
      try {
        if (payload === NOT_DECODED) payload = this.decoder.decode(msg);
        result = await (scope ? scope.run(() => this.call(payload, ctx)) : this.call(payload, ctx));
      } catch (caught) {
        if (caught instanceof DatabaseUnreachable && this.options.databaseHold) {
          // The transaction never began, so the handler did not run: the same attempt runs
          // again once the database answers, and the delivery count does not move.
          scope?.fail(caught);
          if (!(await this.options.databaseHold.wait(caught.cause))) return HANDED_BACK;
          continue;
        }
        const error = breaker ? this.heldByBreaker(caught, ctx) : caught;
        scope?.fail(unwrap(error));
        if (error instanceof BreakerHeld) {
          this.observe(ctx, payload, 'failed', error.failure);
          if (error.counted) EventContext.countInPlaceRetry(ctx);
          continue;
        }
        const delayMs = this.options.retryInPlace ? this.inPlaceDelay(error, ctx) : undefined;
        if (delayMs !== undefined) {
          this.settlement.reportRetry(ctx, error instanceof RetryScheduled ? error.failure : error, delayMs, true);
          this.observe(ctx, payload, 'failed', error);
          await this.waitInPlace(ctx, delayMs);
          EventContext.countInPlaceRetry(ctx);
          continue;
        }
        this.observe(ctx, payload, 'failed', error);
        breaker?.ended();
        return new Failure(error, payload);
      }
      if (result === INBOX_DUPLICATE) {
        scope?.end();
        breaker?.ended();
        return DUPLICATE;
      }
      if (result instanceof DeadLettered) {
        scope?.fail(result.failure);
        this.observe(ctx, payload, 'failed', result.failure);
        breaker?.ended();
        return new Failure(result, payload);
      }
      scope?.end();
      breaker?.succeeded();
      this.observe(ctx, payload, 'succeeded');
      return SUCCESS;
    }
  }

  /**
   * A failure no interceptor classified (the direct path, which skips Nest's pipeline when the
   * handler has no enhancers of the user's) meets the breaker here, as the interceptors' would.
   */
  private heldByBreaker(error: unknown, ctx: EventContext): unknown {
    if (error instanceof RetryScheduled || error instanceof DeadLetterRequired || error instanceof BreakerHeld) return error;
    const decision = decideFailure(this.runtime, error, ctx.attempt);
    return decision.action === 'hold' ? new BreakerHeld(error, decision.counted) : error;
  }

  private call(payload: unknown, ctx: EventContext): Promise<unknown> {
    const timeoutMs = this.options.timeoutMs;
    const call = this.options.inbox ? this.callInTransaction(this.options.inbox, payload, ctx) : this.invoke(payload, ctx);
    return timeoutMs === undefined ? call : withHandlerTimeout(call, timeoutMs, ctx);
  }

  /**
   * One transaction per attempt (an ordered lane's in-place retry gets a fresh one). It commits
   * only a success: a throw, a dead-lettered result, or a call abandoned on its timeout (whose
   * late end must not commit what was already settled as a failure) roll back.
   */
  private callInTransaction(inbox: InboxStore, payload: unknown, ctx: EventContext): Promise<unknown> {
    return inbox.run(
      this.inboxConsumer,
      messageKeyOf(ctx),
      async (tx) => {
        // Timed out while waiting for the transaction (behind the abandoned call's row lock):
        // this attempt is settled already, so the handler must not run in it.
        if (EventContext.isAbandoned(ctx)) throw new Error('abandoned on its timeout before the handler ran');
        bindInboxTransaction(ctx, tx);
        try {
          return await this.invoke(payload, ctx);
        } finally {
          unbindInboxTransaction(ctx);
        }
      },
      (result) => !(result instanceof DeadLettered) && !EventContext.isAbandoned(ctx),
    );
  }

  private observe(ctx: EventContext, payload: unknown, outcome: HandledEvent['outcome'], error?: unknown, givenUp?: Pick<HandledEvent, 'reason' | 'deadLetter'>): void {
    notifyHandled(this.options.observer, ctx, payload, outcome, error, givenUp);
  }

  /** After Settlement parked (or, with no dead-letter stream, terminated) the message. */
  private observeDeadLettered(ctx: EventContext, payload: unknown, error: unknown, reason: DeadLetterReason, deadLetterSeq: number | undefined): void {
    if (!this.options.observer?.active) return;
    const target = this.runtime.sink?.target;
    const deadLetter = target && deadLetterSeq !== undefined ? { stream: target.stream, subject: target.subject, sequence: deadLetterSeq } : undefined;
    this.observe(ctx, payload, 'dead-lettered', error, { reason, deadLetter });
  }

  /** Retry delay for an ordered lane, whether the interceptors or the policy decided it. */
  private inPlaceDelay(error: unknown, ctx: EventContext): number | undefined {
    if (error instanceof RetryScheduled) return error.delayMs;
    if (error instanceof DeadLetterRequired || error instanceof DeadLettered) return undefined;
    const decision = this.runtime.policy.decide(error, ctx.attempt);
    return decision.action === 'retry' ? decision.delayMs : undefined;
  }

  private async settleFailure(msg: JsMsg, ctx: EventContext, outcome: Failure): Promise<void> {
    const error = outcome.error;
    if (error instanceof DeadLettered) {
      this.settlement.termDeadLettered(msg, ctx, error);
      this.observeDeadLettered(ctx, outcome.payload, error.failure, error.reason, error.deadLetterSeq);
      return;
    }
    if (error instanceof RetryScheduled) {
      this.settlement.nakWithDelay(msg, ctx, error.failure, error.delayMs, error.deadLetterError ? `dead-letter publish failed: ${describeCause(error.deadLetterError)}` : undefined);
      return;
    }
    if (error instanceof DeadLetterRequired) {
      await this.deadLetter(msg, ctx, error.failure, error.reason, outcome.payload);
      return;
    }
    // Errors that did not pass the interceptors: guards, payload binding, or a pipeline the user
    // rebuilt without them. The same policy applies, so none of them can lose a message.
    const decision = this.runtime.policy.decide(error, ctx.attempt);
    if (decision.action === 'retry') {
      this.settlement.nakWithDelay(msg, ctx, error, decision.delayMs);
      return;
    }
    await this.deadLetter(msg, ctx, error, decision.reason, outcome.payload);
  }

  private async deadLetter(msg: JsMsg, ctx: EventContext, error: unknown, reason: DeadLetterReason, payload: unknown): Promise<void> {
    const parked = await parkForGood(this.runtime, this.settlement, msg, ctx, error, reason);
    if (parked) this.observeDeadLettered(ctx, payload, error, reason, parked.deadLetterSeq);
  }

  /** Keeps the message's ack wait alive while an ordered lane waits out a retry delay. */
  private async waitInPlace(ctx: EventContext, delayMs: number): Promise<void> {
    const beat = Math.max(250, Math.floor(this.options.ackWaitMs / 2));
    let left = delayMs;
    while (left > 0) {
      const step = Math.min(left, beat);
      await new Promise((resolve) => setTimeout(resolve, step));
      left -= step;
      ctx.working();
    }
  }
}

const SUCCESS = Symbol('success');
/** How many lease lengths a delivery waits on a live holder before it is handed back. */
const LEASE_WAIT_LEASES = 4;
/** Longest pause between two looks at a lease a delivery waits on. */
const MAX_LEASE_POLL_MS = 1_000;
/** The inbox already holds the message's key: acked without running the handler. */
const DUPLICATE = Symbol('duplicate');
/** Held by the circuit breaker when the app stopped: handed back for another instance. */
const HANDED_BACK = Symbol('handed back');

function unwrap(error: unknown): unknown {
  return error instanceof RetryScheduled || error instanceof DeadLetterRequired || error instanceof BreakerHeld ? error.failure : error;
}

/** A failed call, or a DeadLettered result of the pipeline; with the payload, for observers. */
class Failure {
  constructor(
    readonly error: unknown,
    readonly payload: unknown,
  ) {}
}

type Outcome = typeof SUCCESS | typeof DUPLICATE | typeof HANDED_BACK | Failure;
