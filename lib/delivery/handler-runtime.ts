import { EventContext, type ConsumerDescriptor } from '../context/event-context.js';
import type { DeadLetterSink } from '../dead-letters/dead-letter-sink.js';
import type { FailureDecision, FailurePolicy } from './failure-policy.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import type { HandlerInstrumentation } from '../observability/instrumentation.js';

/** Per-handler machinery the interceptors reach through the EventContext. */
export interface HandlerRuntime {
  readonly policy: FailurePolicy;
  readonly sink: DeadLetterSink | undefined;
  /** Metrics and tracing hooks, bound to this handler's labels; undefined when both are off. */
  readonly instrumentation?: HandlerInstrumentation;
  /** Set when the handler has `circuitBreaker`. */
  readonly breaker?: CircuitBreaker;
}

/**
 * The policy's decision, or `hold` when the handler's circuit breaker keeps the message. Only
 * failures a retry could fix (retry, or exhausted) count towards the breaker: an invalid payload
 * or a terminal error says nothing about a dependency. A failed trial holds its message as a
 * counted attempt (`counted`), and on its last attempt lets the policy dead-letter it.
 */
export function decideFailure(runtime: HandlerRuntime, error: unknown, attempt: number): FailureDecision | { readonly action: 'hold'; readonly counted: boolean } {
  const decision = runtime.policy.decide(error, attempt);
  const countable = decision.action === 'retry' || decision.reason === 'exhausted';
  const verdict = countable ? runtime.breaker?.failed() : undefined;
  if (verdict === 'hold') return { action: 'hold', counted: false };
  if (verdict === 'trial-failed' && decision.action === 'retry') return { action: 'hold', counted: true };
  return decision;
}

// Keyed by the handler's descriptor, which EventContext (in a folder below this one) carries:
// the context stays free of delivery's types, and reading a runtime needs no cast.
const runtimes = new WeakMap<ConsumerDescriptor, HandlerRuntime>();

export function bindHandlerRuntime(descriptor: ConsumerDescriptor, runtime: HandlerRuntime): void {
  runtimes.set(descriptor, runtime);
}

/** The runtime of a context's handler; undefined for a context the dispatcher did not make. */
export function runtimeOf(ctx: EventContext): HandlerRuntime | undefined {
  return runtimes.get(EventContext.descriptorOf(ctx));
}

/** For the interceptors, which only ever see contexts the dispatcher made. */
export function handlerRuntime(ctx: EventContext): HandlerRuntime {
  const runtime = runtimeOf(ctx);
  if (!runtime) throw new Error(`${ctx.handler}: no handler runtime bound to this context (a bug in nestjs-jetstream)`);
  return runtime;
}
