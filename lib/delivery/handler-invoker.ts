import type { NestInterceptor } from '@nestjs/common';
import { EXCEPTION_FILTERS_METADATA, INTERCEPTORS_METADATA } from '@nestjs/common/constants.js';
import type { ApplicationConfig, ExternalContextCreator } from '@nestjs/core';
import type { EventContext } from '../consumer/event-context.js';
import { JetStreamDeadLetterInterceptor } from './interceptors/dead-letter.interceptor.js';
import { JetStreamRetryInterceptor } from './interceptors/retry.interceptor.js';
import { JETSTREAM_CONTEXT_TYPE } from './jetstream-context-type.js';

export type HandlerInvoker = (payload: unknown, ctx: EventContext) => Promise<unknown>;

type Method = (...args: unknown[]) => unknown;

/**
 * Built once per handler: guards, interceptors and exception filters declared on the method,
 * its class or globally wrap every call, exactly as they would an HTTP route. The arguments are
 * `(payload, ctx)`, so `context.switchToRpc().getData()` is the payload.
 *
 * The dead-letter and retry interceptors go first on the method, unless the method or its class
 * already lists them (or subclasses of them): that is how users reorder or replace them.
 */
export function createHandlerInvoker(
  contextCreator: ExternalContextCreator,
  appConfig: ApplicationConfig,
  instance: object,
  methodName: string,
  builtIns: { deadLetter: JetStreamDeadLetterInterceptor; retry: JetStreamRetryInterceptor },
): HandlerInvoker {
  const original = (instance as Record<string, Method>)[methodName];
  const callback = withBuiltInInterceptors(instance, original, builtIns);
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
    { guards: true, interceptors: true, filters: hasExceptionFilters(appConfig, instance, original) },
    JETSTREAM_CONTEXT_TYPE,
  );
}

/**
 * A stand-in for the method carrying the same metadata plus the built-in interceptors, so the
 * user's class is never modified (two applications in one process may share it).
 */
function withBuiltInInterceptors(
  instance: object,
  original: Method,
  builtIns: { deadLetter: JetStreamDeadLetterInterceptor; retry: JetStreamRetryInterceptor },
): Method {
  const declared = [
    ...listed(instance.constructor),
    ...listed(original),
  ];
  const has = (type: abstract new (...args: never[]) => unknown) =>
    declared.some((i) => i === type || (typeof i === 'function' && i.prototype instanceof type) || i instanceof type);
  const missing: NestInterceptor[] = [];
  if (!has(JetStreamDeadLetterInterceptor)) missing.push(builtIns.deadLetter);
  if (!has(JetStreamRetryInterceptor)) missing.push(builtIns.retry);
  if (missing.length === 0) return original;
  const stand: Method = function (this: unknown, ...args: unknown[]) {
    return original.apply(this, args);
  };
  Object.defineProperty(stand, 'name', { value: original.name });
  for (const key of Reflect.getMetadataKeys(original)) {
    Reflect.defineMetadata(key, Reflect.getMetadata(key, original), stand);
  }
  Reflect.defineMetadata(INTERCEPTORS_METADATA, [...missing, ...listed(original)], stand);
  return stand;
}

function listed(target: object): unknown[] {
  return (Reflect.getMetadata(INTERCEPTORS_METADATA, target) as unknown[] | undefined) ?? [];
}

function hasExceptionFilters(appConfig: ApplicationConfig, instance: object, callback: object): boolean {
  const own = (target: object) => ((Reflect.getMetadata(EXCEPTION_FILTERS_METADATA, target) as unknown[] | undefined) ?? []).length > 0;
  return appConfig.getGlobalFilters().length > 0 || own(instance.constructor) || own(callback);
}
