import type { Logger } from '@nestjs/common';
import type { JsMsg } from '@nats-io/jetstream';
import type { EventContext } from '../context/event-context.js';
import type { ReplyInbox } from '../connection/reply-inbox.js';
import { describeFailure } from '../errors/failure-description.js';
import { describeCause } from '../errors/jetstream-errors.js';
import type { DeadLetterReason } from '../dead-letters/dead-letter-target.js';
import type { DeadLettered } from './dispositions.js';
import { runtimeOf, type HandlerRuntime } from './handler-runtime.js';

const ACK = new TextEncoder().encode('+ACK');

/**
 * The only code that acks, naks or terminates a message: one file answers "when is a message
 * done". A message is acked only by `ackAfterSuccess` (after success; in exactly-once mode after
 * the done mark is confirmed), `ackConfirmedBeforeRun` (before the handler in at-most-once mode) and `ackDuplicate`
 * (already handled, per the idempotency record).
 */
export class Settlement {
  constructor(
    private readonly logger: Logger,
    // Servers before 2.10.4 ignore `+TERM <reason>` entirely and redeliver the message.
    private readonly termReasonSupported: boolean,
    /** Undefined when no handler confirms acks (at-least-once only). */
    private readonly inbox: ReplyInbox | undefined,
  ) {}

  /** Plain acks waiting for the end of this event-loop turn, sent together. */
  private acks: JsMsg[] = [];

  /**
   * The handler resolved. A plain ack: nothing waits for the server's reply on this path. Acks
   * go out at the end of the event-loop turn, so the handlers that finish in one turn share one
   * socket write instead of one write each (the largest per-message cost in profiles).
   */
  ackAfterSuccess(msg: JsMsg, ctx: EventContext): void {
    observed(ctx)?.settled('success');
    if (this.acks.push(msg) === 1) setImmediate(this.flushAcks);
  }

  /** Sends the acks queued by `ackAfterSuccess` now (also before a consumer reports itself stopped). */
  readonly flushAcks = (): void => {
    const acks = this.acks;
    if (acks.length === 0) return;
    this.acks = [];
    // No closure per ack through send(): this loop runs for every message of the default path.
    for (const msg of acks) {
      try {
        msg.ack();
      } catch (err) {
        this.unsent(msg, 'ack', err);
      }
    }
  };

  /** The handler resolved and the ack was sent before it ran (at-most-once). */
  reportSuccess(ctx: EventContext): void {
    observed(ctx)?.settled('success');
  }

  /**
   * Acks and waits for the server to confirm. False when it cannot be confirmed: the caller
   * must then not treat the message as settled (at-most-once skips the handler).
   */
  async ackConfirmedBeforeRun(msg: JsMsg, ctx: EventContext): Promise<boolean> {
    try {
      await this.ackConfirmed(msg);
      return true;
    } catch (err) {
      this.logger.warn(`${ctx.handler}: ack of seq ${msg.seq} not confirmed (${describeCause(err)}); the server will redeliver it`);
      return false;
    }
  }

  /**
   * JetStream's double ack through the shared reply inbox (the client's `ackAck()` costs a
   * request object and a timer per message). The message is then marked acked in the client,
   * as `ackAck()` does, so a late `working()` or a nak on shutdown is not sent for it.
   */
  private async ackConfirmed(msg: JsMsg): Promise<void> {
    // The ack subject ($JS.ACK…) is on every JetStream delivery; the JsMsg interface omits it.
    const reply = (msg as unknown as { reply?: string }).reply;
    if (!reply) throw new Error('the message has no reply subject to ack');
    if (!this.inbox) throw new Error('confirmed acks need the reply inbox (bug: engine built none)');
    await this.inbox.request(reply, ACK);
    (msg as unknown as { didAck?: boolean }).didAck = true;
  }

  /** A duplicate per the idempotency record (handled before, or a copy): ack without running. */
  ackDuplicate(msg: JsMsg, ctx: EventContext): void {
    this.logger.debug?.(`${ctx.handler}: seq ${msg.seq} is a duplicate (its key was handled, or is being handled); acking it`);
    observed(ctx)?.settled('duplicate');
    this.send(msg, 'ack', () => msg.ack());
  }

  /** Another instance holds this message's lease: look again once it may have expired. */
  nakWhileLeased(msg: JsMsg, delayMs: number): void {
    this.send(msg, 'nak', () => msg.nak(Math.max(100, delayMs)));
  }

  /** The handler failed; the server redelivers after `delayMs` (never at once). */
  nakWithDelay(msg: JsMsg, ctx: EventContext, error: unknown, delayMs: number, note?: string): void {
    this.reportRetry(ctx, error, delayMs, false, note);
    this.send(msg, 'nak', () => msg.nak(delayMs));
  }

  reportRetry(ctx: EventContext, error: unknown, delayMs: number, inPlace: boolean, note?: string): void {
    observed(ctx)?.settled('retry');
    this.logger.warn(
      `${ctx.handler} failed on ${ctx.subject} (stream ${ctx.stream} seq ${ctx.sequence}, attempt ${ctx.attempt}): ${describeFailure(error)}${note ? ` [${note}]` : ''}; ${inPlace ? 'retrying in place' : 'redelivery'} in ${delayMs} ms`,
    );
  }

  /** The copy is safely in the dead-letter stream: the original is done for this consumer. */
  termDeadLettered(msg: JsMsg, ctx: EventContext, outcome: DeadLettered): void {
    this.reportDeadLettered(ctx, outcome);
    this.terminate(msg, outcome.reason);
  }

  reportDeadLettered(ctx: EventContext, { failure, reason, deadLetterSeq }: DeadLettered): void {
    observed(ctx)?.settled('dead_letter', reason);
    const target = runtimeOf(ctx)?.sink?.target;
    this.logger.error(
      `${ctx.handler} dead-lettered ${ctx.subject} (stream ${ctx.stream} seq ${ctx.sequence}, consumer ${ctx.consumer}, attempt ${ctx.attempt}, reason ${reason}): ${describeFailure(failure)} -> ${target?.stream ?? '?'} seq ${deadLetterSeq} (${target?.subject ?? '?'})`,
    );
  }

  /** No dead-letter stream: the message is terminated and everything about it is logged. */
  termWithoutDeadLetter(msg: JsMsg, ctx: EventContext, error: unknown, reason: DeadLetterReason): void {
    observed(ctx)?.settled('terminated', reason);
    this.logger.error(
      `${ctx.handler} gave up on ${ctx.subject} (stream ${ctx.stream} seq ${ctx.sequence}, consumer ${ctx.consumer}, attempt ${ctx.attempt}, reason ${reason}, msg-id ${ctx.msgId ?? 'none'}): ${describeFailure(error)}; message terminated (no dead-letter stream configured)`,
    );
    this.terminate(msg, reason);
  }

  /** At-most-once: the ack is already confirmed, so a failure can only be reported. */
  reportLost(ctx: EventContext, error: unknown): void {
    observed(ctx)?.settled('failed');
    this.logger.error(
      `${ctx.handler} failed on ${ctx.subject} (stream ${ctx.stream} seq ${ctx.sequence}, at-most-once, msg-id ${ctx.msgId ?? 'none'}): ${describeFailure(error)}; not redelivered`,
    );
  }

  /** Hands an unprocessed message back at once, e.g. when stopping, so another instance takes it. */
  nakImmediately(msg: JsMsg): void {
    this.send(msg, 'nak', () => msg.nak());
  }

  private terminate(msg: JsMsg, reason: string): void {
    this.send(msg, 'term', () => (this.termReasonSupported ? msg.term(reason) : msg.term()));
  }

  private send(msg: JsMsg, what: string, action: () => void): void {
    try {
      action();
    } catch (err) {
      this.unsent(msg, what, err);
    }
  }

  /** A closed connection cannot settle; the server redelivers after the ack wait. */
  private unsent(msg: JsMsg, what: string, err: unknown): void {
    this.logger.warn(`Could not ${what} stream seq ${msg.seq} (${describeCause(err)}); the server will redeliver it`);
  }
}

/** The handler's metrics, counting each way a delivery ends once, in this file. */
function observed(ctx: EventContext): HandlerRuntime['instrumentation'] {
  return runtimeOf(ctx)?.instrumentation;
}

