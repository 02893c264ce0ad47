import { EventContext } from '../context/event-context.js';
import { HandlerTimeoutError } from '../errors/jetstream-errors.js';

/**
 * Races a handler call against its `timeoutMs`. On expiry the attempt fails with a
 * `HandlerTimeoutError` (so retry and dead-lettering apply as to any failure) and the context is
 * marked abandoned; the call keeps running, since a promise cannot be cancelled, but the race
 * still holds its rejection, so a late failure is never an unhandled rejection.
 */
export function withHandlerTimeout(call: Promise<unknown>, timeoutMs: number, ctx: EventContext): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      EventContext.abandon(ctx);
      reject(new HandlerTimeoutError(ctx.handler, timeoutMs));
    }, timeoutMs);
  });
  return Promise.race([call, expired]).finally(() => clearTimeout(timer));
}
