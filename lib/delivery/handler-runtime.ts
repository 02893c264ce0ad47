import { EventContext, type ConsumerDescriptor } from '../context/event-context.js';
import type { DeadLetterSink } from '../dead-letters/dead-letter-sink.js';
import type { FailurePolicy } from './failure-policy.js';
import type { HandlerInstrumentation } from '../observability/instrumentation.js';

/** Per-handler machinery the interceptors reach through the EventContext. */
export interface HandlerRuntime {
  readonly policy: FailurePolicy;
  readonly sink: DeadLetterSink | undefined;
  /** Metrics and tracing hooks, bound to this handler's labels; undefined when both are off. */
  readonly instrumentation?: HandlerInstrumentation;
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
