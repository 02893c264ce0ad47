import type { INestApplicationContext } from '@nestjs/common';
import type { HandledEvent } from '../delivery/dispatcher.js';
import { scopedToken } from '../module/connection-tokens.js';
import type { JetStreamLifecycle } from '../module/jetstream-lifecycle.js';

export interface HandledQuery {
  /** `ClassName.method`; default any handler. */
  readonly handler?: string;
  readonly subject?: string;
  /** Default any outcome. */
  readonly outcome?: HandledEvent['outcome'];
  readonly predicate?: (event: HandledEvent) => boolean;
}

export interface WaitOptions extends HandledQuery {
  /** Wait until this many matching calls were recorded; default 1. */
  readonly count?: number;
  /** Default 10 000 ms. */
  readonly timeoutMs?: number;
}

export interface HandledRecorder {
  /** Every handler call recorded so far, in order. */
  readonly events: readonly HandledEvent[];
  /** Recorded calls matching the query. */
  matching(query?: HandledQuery): HandledEvent[];
  /** Resolves with the matching calls once there are `count` of them; rejects after the deadline. */
  waitFor(options?: WaitOptions): Promise<HandledEvent[]>;
  stop(): void;
}

/**
 * Records every `@OnEvent` handler call of an application, from now on. Start it before
 * publishing, then wait on what you expect instead of sleeping:
 *
 *   const handled = recordHandled(app);
 *   await publisher.publish('orders.created', order);
 *   const [call] = await handled.waitFor({ handler: 'Billing.onCreated' });
 */
export function recordHandled(app: INestApplicationContext, options: { connection?: string } = {}): HandledRecorder {
  const events: HandledEvent[] = [];
  const waiters = new Set<() => void>();
  const unsubscribe = app.get<JetStreamLifecycle>(scopedToken('lifecycle', options.connection), { strict: false }).onHandled((event) => {
    events.push(event);
    for (const wake of waiters) wake();
  });
  const matching = (query: HandledQuery = {}) =>
    events.filter(
      (e) =>
        (!query.handler || e.handlerId === query.handler) &&
        (!query.subject || e.subject === query.subject) &&
        (!query.outcome || e.outcome === query.outcome) &&
        (!query.predicate || query.predicate(e)),
    );
  return {
    events,
    matching,
    stop: unsubscribe,
    waitFor(options: WaitOptions = {}) {
      const { count = 1, timeoutMs = 10_000 } = options;
      return new Promise<HandledEvent[]>((resolve, reject) => {
        const check = () => {
          const found = matching(options);
          if (found.length < count) return;
          cleanup();
          resolve(found);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`Timed out after ${timeoutMs} ms: ${matching(options).length} of ${count} matching handler calls (${describe(options)})`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}

function describe(query: HandledQuery): string {
  const parts = [
    query.handler && `handler ${query.handler}`,
    query.subject && `subject ${query.subject}`,
    query.outcome && `outcome ${query.outcome}`,
    query.predicate && 'a predicate',
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : 'any';
}
