import type { EventContext } from '../context/event-context.js';
import type { HandledEvent, HandledObserver } from './dispatcher.js';
import { DeadLetterRequired, RetryScheduled } from './dispositions.js';

/** The listeners of handler outcomes; `active` lets the hot path skip building events. */
export class HandledObservers implements HandledObserver {
  private readonly listeners = new Set<(event: HandledEvent) => void>();

  get active(): boolean {
    return this.listeners.size > 0;
  }

  add(listener: (event: HandledEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  notify(event: HandledEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // An observer must never change how a message is settled.
      }
    }
  }
}

/** A message dispatched before (or without) decoding its payload: ordering lanes keyed by subject, and hand-backs. */
export const NOT_DECODED = Symbol('not-decoded');

/**
 * Tells an observer what a handler call came to, in the one shape the per-message and the batch
 * dispatcher both report: the failure itself rather than the retry or dead-letter wrapper
 * around it, and no payload for a message that was never decoded.
 */
export function notifyHandled(
  observer: HandledObserver | undefined,
  ctx: EventContext,
  payload: unknown,
  outcome: HandledEvent['outcome'],
  error?: unknown,
  givenUp?: Pick<HandledEvent, 'reason' | 'deadLetter'>,
): void {
  if (!observer?.active) return;
  observer.notify({
    handlerId: ctx.handler,
    subject: ctx.subject,
    stream: ctx.stream,
    sequence: ctx.sequence,
    attempt: ctx.attempt,
    payload: payload === NOT_DECODED ? undefined : payload,
    outcome,
    error: error instanceof RetryScheduled || error instanceof DeadLetterRequired ? error.failure : error,
    reason: givenUp?.reason,
    deadLetter: givenUp?.deadLetter,
  });
}
