import { EventContext } from '../context/event-context.js';
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

export function handlerRuntime(ctx: EventContext): HandlerRuntime {
  return EventContext.runtimeOf(ctx) as HandlerRuntime;
}
