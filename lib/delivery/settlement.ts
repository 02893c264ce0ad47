import type { Logger } from '@nestjs/common';
import type { JsMsg } from '@nats-io/jetstream';
import type { EventContext } from '../consumer/event-context.js';
import { describeCause, PayloadValidationError } from '../errors/jetstream-errors.js';

/**
 * The only code that acks, naks or terminates a message: one file answers "when is a message
 * done", and a message is acked only through `succeed`.
 */
export class Settlement {
  constructor(
    private readonly logger: Logger,
    // Servers before 2.10.4 ignore `+TERM <reason>` entirely and redeliver the message.
    private readonly termReasonSupported: boolean,
  ) {}

  /** The handler resolved. A plain ack: nothing waits for the server's reply on this path. */
  succeed(msg: JsMsg): void {
    this.send(msg, 'ack', () => msg.ack());
  }

  /** The handler failed; the server redelivers after `delayMs`. */
  retry(msg: JsMsg, ctx: EventContext, error: unknown, delayMs: number): void {
    this.logger.warn(
      `${ctx.handler} failed on ${ctx.subject} (stream ${ctx.stream} seq ${ctx.sequence}, delivery ${ctx.deliveryCount}): ${describeError(error)}; redelivery in ${delayMs} ms`,
    );
    this.send(msg, 'nak', () => msg.nak(delayMs));
  }

  /** Retrying cannot help (the payload itself is wrong): the message is not delivered again. */
  reject(msg: JsMsg, ctx: EventContext, error: unknown): void {
    const reason = error instanceof PayloadValidationError ? 'invalid payload' : 'rejected';
    this.logger.error(
      `${ctx.handler} rejected ${ctx.subject} (stream ${ctx.stream} seq ${ctx.sequence}, delivery ${ctx.deliveryCount}): ${describeError(error)}; message terminated`,
    );
    this.send(msg, 'term', () => (this.termReasonSupported ? msg.term(reason) : msg.term()));
  }

  /** Hands an unprocessed message back at once, e.g. when stopping, so another instance takes it. */
  release(msg: JsMsg): void {
    this.send(msg, 'nak', () => msg.nak());
  }

  private send(msg: JsMsg, what: string, action: () => void): void {
    try {
      action();
    } catch (err) {
      // A closed connection cannot settle; the server redelivers after the ack wait.
      this.logger.warn(`Could not ${what} stream seq ${msg.seq} (${describeCause(err)}); the server will redeliver it`);
    }
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return `non-Error thrown: ${safeString(error)}`;
}

function safeString(value: unknown): string {
  try {
    return typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
