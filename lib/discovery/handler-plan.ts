import type { ResolvedHandlerOptions } from '../decorators/on-event-options.js';
import type { HandlerInvoker } from '../delivery/handler-invoker.js';

/** A discovered handler method, before its stream is known. */
export interface DiscoveredHandler {
  /** `ClassName.method`, used in every message about this handler. */
  readonly handlerId: string;
  readonly instance: object;
  readonly methodName: string;
  readonly subject: string;
  readonly options: ResolvedHandlerOptions;
  /** Declared type of the first parameter, from `design:paramtypes`. */
  readonly payloadType: unknown;
}

/**
 * What the consumer engine needs to run a handler, whoever found it: `@OnEvent` discovery or
 * the microservices server strategy's `@EventPattern` handlers.
 */
export interface HandlerRegistration {
  readonly handlerId: string;
  readonly subject: string;
  readonly options: ResolvedHandlerOptions;
  readonly payloadType: unknown;
  /** The handler's whole pipeline, built once. */
  readonly invoke: HandlerInvoker;
}

/** A registration with its stream resolved: everything needed to provision and run its consumer. */
export interface HandlerPlan extends HandlerRegistration {
  readonly stream: string;
}
