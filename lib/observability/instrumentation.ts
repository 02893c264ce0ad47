import type { MsgHdrs } from '@nats-io/transport-node';
import type { EventContext } from '../context/event-context.js';

/**
 * How a delivery was settled, the `status` label of `nats_consume_total`:
 * - `success`: the handler resolved (acked, or already acked in at-most-once mode);
 * - `retry`: handed back for redelivery, or retried in place by an ordered handler;
 * - `dead_letter`: parked in the dead-letter stream (a copy, for at-most-once);
 * - `terminated`: given up on with no dead-letter stream configured;
 * - `failed`: an at-most-once failure with no dead-letter copy; it is not redelivered;
 * - `duplicate`: an exactly-once redelivery that was already handled, acked without a call.
 */
export type ConsumeStatus = 'success' | 'retry' | 'dead_letter' | 'terminated' | 'failed' | 'duplicate';

/** A handler's circuit breaker: `closed` runs messages, `open` holds them, `half-open` runs one trial. */
export type CircuitBreakerState = 'closed' | 'open' | 'half-open';

/** One handler call being measured and traced. Built only when observability is on. */
export interface HandlingScope {
  /** Runs the call with its trace context active, so users' own spans nest under it. */
  run<T>(call: () => Promise<T>): Promise<T>;
  /** The call resolved. */
  end(): void;
  /** The call failed with `error` (unwrapped from the retry and dead-letter dispositions). */
  fail(error: unknown): void;
}

/**
 * The hooks of one handler: the dispatcher opens a scope per call, Settlement reports how each
 * delivery ended. Labels are bound once per handler, so a message costs no label lookups.
 */
export interface HandlerInstrumentation {
  begin(ctx: EventContext): HandlingScope;
  /** One call of a batch handler: one span, linked to each message's trace. */
  beginBatch(ctxs: readonly EventContext[]): HandlingScope;
  settled(status: ConsumeStatus, reason?: string): void;
  /** The handler's circuit breaker changed state; `opened` on each transition to `open`. */
  circuitBreaker(state: CircuitBreakerState, opened: boolean): void;
}

export interface PublishOutcome {
  readonly stream: string;
  readonly seq: number;
  readonly duplicate: boolean;
}

/** One publish being measured and traced. */
export interface PublishScope {
  /** Headers to send: the caller's, with the trace context added when tracing is on. */
  readonly headers: MsgHdrs | undefined;
  /** `outcome` on success; undefined with the error on failure. */
  end(outcome: PublishOutcome | undefined, error?: unknown): void;
}

export interface PublishInstrumentation {
  begin(subject: string, msgId: string, headers: MsgHdrs | undefined): PublishScope;
}

/** What a handler's hooks are bound to. */
export interface HandlerLabels {
  /** The handler's subject as declared (a filter, possibly with wildcards): bounded cardinality. */
  readonly subject: string;
  readonly stream: string;
  /** Consumer name on the server: the durable name, or the generated name of an ephemeral. */
  readonly consumer: string;
}
