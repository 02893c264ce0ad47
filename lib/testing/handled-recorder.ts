import type { INestApplicationContext } from '@nestjs/common';
import type { HandledEvent } from '../delivery/dispatcher.js';
import { scopedToken } from '../module/connection-tokens.js';
import type { JetStreamLifecycle } from '../module/jetstream-lifecycle.js';
import { WAIT_TIMEOUT_MS, waitForMatches } from './wait-for-matches.js';

export interface HandledQuery {
  /** `ClassName.method`; default any handler. */
  readonly handler?: string;
  readonly subject?: string;
  /** Default any outcome. */
  readonly outcome?: HandledEvent['outcome'];
  /** Only `dead-lettered` events have one; default any. */
  readonly reason?: HandledEvent['reason'];
  readonly predicate?: (event: HandledEvent) => boolean;
}

export interface WaitOptions extends HandledQuery {
  /** Wait until this many matching calls were recorded; default 1. */
  readonly count?: number;
  /**
   * Default 4 000 ms (WAIT_TIMEOUT_MS): under Jest's and Vitest's 5 s test timeout, so a wait that
   * fails reports what it saw instead of the runner's bare "Exceeded timeout". Raise both together.
   */
  readonly timeoutMs?: number;
}

export interface HandledRecorder {
  /** Every handler call recorded so far, in order. */
  readonly events: readonly HandledEvent[];
  /** Recorded calls matching the query. */
  matching(query?: HandledQuery): HandledEvent[];
  /** Resolves with the matching calls once there are `count` of them; rejects after the deadline. */
  waitFor(options?: WaitOptions): Promise<HandledEvent[]>;
  /**
   * Resolves with the first `dead-lettered` event matching the query: the message was given up
   * on, with `reason`, `error` and, when the handler has a dead-letter stream, where its copy went.
   */
  waitForDeadLetter(options?: Omit<WaitOptions, 'outcome' | 'count'>): Promise<HandledEvent>;
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
        (!query.reason || e.reason === query.reason) &&
        (!query.predicate || query.predicate(e)),
    );
  const waitFor = (options: WaitOptions = {}) => {
    const { count = 1, timeoutMs = WAIT_TIMEOUT_MS } = options;
    return waitForMatches(waiters, () => matching(options), count, timeoutMs, (found) => `${found} of ${count} matching handler calls (${describe(options)}); recorded: ${summarize(events)}`);
  };
  return {
    events,
    matching,
    stop: unsubscribe,
    waitFor,
    waitForDeadLetter: async (options = {}) => (await waitFor({ ...options, outcome: 'dead-lettered' }))[0],
  };
}

function describe(query: HandledQuery): string {
  const parts = [
    query.handler && `handler ${query.handler}`,
    query.subject && `subject ${query.subject}`,
    query.outcome && `outcome ${query.outcome}`,
    query.reason && `reason ${query.reason}`,
    query.predicate && 'a predicate',
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : 'any';
}

/** What was recorded, so a failed wait shows what happened instead (`H.m failed x2, ...`). */
function summarize(events: readonly HandledEvent[]): string {
  if (events.length === 0) return 'nothing';
  const counts = new Map<string, number>();
  for (const e of events) {
    const key = `${e.handlerId} ${e.outcome}${e.reason ? ` (${e.reason})` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, n]) => (n > 1 ? `${key} x${n}` : key)).join(', ');
}
