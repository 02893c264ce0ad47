import type { ResolvedHandlerOptions } from '../decorators/on-event-options.js';

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

/** A handler with its stream resolved: everything needed to provision and run its consumer. */
export interface HandlerPlan extends DiscoveredHandler {
  readonly stream: string;
}
