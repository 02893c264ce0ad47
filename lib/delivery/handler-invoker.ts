import type { ApplicationConfig, ExternalContextCreator } from '@nestjs/core';
import { EXCEPTION_FILTERS_METADATA } from '@nestjs/common/constants.js';
import type { EventContext } from '../consumer/event-context.js';
import { JETSTREAM_CONTEXT_TYPE } from './jetstream-context-type.js';

export type HandlerInvoker = (payload: unknown, ctx: EventContext) => Promise<unknown>;

/**
 * Built once per handler: guards, interceptors and exception filters declared on the method,
 * its class or globally wrap every call, exactly as they would an HTTP route. The arguments are
 * `(payload, ctx)`, so `context.switchToRpc().getData()` is the payload.
 */
export function createHandlerInvoker(
  contextCreator: ExternalContextCreator,
  appConfig: ApplicationConfig,
  instance: object,
  methodName: string,
): HandlerInvoker {
  const callback = (instance as Record<string, (...args: unknown[]) => unknown>)[methodName];
  return contextCreator.create(
    instance,
    callback,
    methodName,
    undefined,
    undefined,
    undefined,
    undefined,
    // Nest's fallback filter logs every error it sees; with no filter of the user's to run,
    // leave errors to Settlement, which logs them once with subject and sequence.
    { guards: true, interceptors: true, filters: hasExceptionFilters(appConfig, instance, callback) },
    JETSTREAM_CONTEXT_TYPE,
  );
}

function hasExceptionFilters(appConfig: ApplicationConfig, instance: object, callback: object): boolean {
  const own = (target: object) => ((Reflect.getMetadata(EXCEPTION_FILTERS_METADATA, target) as unknown[] | undefined) ?? []).length > 0;
  return appConfig.getGlobalFilters().length > 0 || own(instance.constructor) || own(callback);
}
