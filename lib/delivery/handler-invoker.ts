import type { ArgumentMetadata, NestInterceptor, PipeTransform } from '@nestjs/common';
import { EXCEPTION_FILTERS_METADATA, GUARDS_METADATA, INTERCEPTORS_METADATA, PIPES_METADATA } from '@nestjs/common/constants.js';
import { isObservable, lastValueFrom } from 'rxjs';
import type { ApplicationConfig, ExternalContextCreator } from '@nestjs/core';
import type { BatchContext } from '../context/batch-context.js';
import { EventContext } from '../context/event-context.js';
import { isKvRemovalMessage } from '../context/kv-change.js';
import { eventParamLayout, payloadParameterType, takesInboxTransaction } from '../decorators/event-params.decorator.js';
import { inboxTransactionOf } from './inbox-transaction.js';
import { JetStreamDeadLetterInterceptor } from './interceptors/dead-letter.interceptor.js';
import { JetStreamRetryInterceptor } from './interceptors/retry.interceptor.js';
import { JETSTREAM_CONTEXT_TYPE } from './jetstream-context-type.js';

/** `(payload, EventContext)`, or for a batch handler `(payloads, BatchContext)`. */
export type HandlerInvoker = (payload: unknown, ctx: EventContext | BatchContext) => Promise<unknown>;

type Method = (...args: unknown[]) => unknown;

export interface BuiltIns {
  readonly deadLetter: JetStreamDeadLetterInterceptor;
  readonly retry: JetStreamRetryInterceptor;
  /** Binds and validates the payload class; undefined when the payload type has no class. */
  readonly payloadPipe: PipeTransform | undefined;
}

// Route-args metadata of our own: it declares the payload as the one pipeable parameter, so the
// event context never passes through pipes (a global ValidationPipe would rebuild it). Type 3 is
// Nest's RouteParamtypes.BODY: pipes see `type: 'body'`, the message body, and a global
// ValidationPipe validates it as it would a request body.
const PAYLOAD_ARGS_METADATA = 'nestjs-jetstream:payload-args';
const BODY = 3;
const PIPES_KEY_SUFFIX = '#jetstream-payload';
const PARAMTYPES = 'design:paramtypes';
const payloadParams = { exchangeKeyForValue: (_type: number, _data: unknown, args: unknown[]) => args[0] };

/**
 * Built once per handler: the Nest pipeline a route would get. Guards, then interceptors (the
 * built-in dead-letter and retry ones first on the method, unless the method or class lists
 * them itself: that is how users reorder or replace them), then pipes on the payload (global,
 * class, method, then the payload class binding), then the handler with `(payload, ctx)`.
 */
export function createHandlerInvoker(
  contextCreator: ExternalContextCreator,
  appConfig: ApplicationConfig,
  instance: object,
  methodName: string,
  builtIns: BuiltIns,
): HandlerInvoker {
  const original = (instance as Record<string, Method>)[methodName];
  const call = inEventOrder(instance, methodName, original);
  if (!hasUserEnhancers(appConfig, instance, original)) return directInvoker(instance, call, methodName, builtIns.payloadPipe);
  const applyPipes = createPipes(contextCreator, appConfig, instance, original, methodName, builtIns.payloadPipe);
  const stand = standIn(call, applyPipes);
  copyMetadata(original, stand);
  const interceptors = builtInInterceptors(instance, original, builtIns);
  if (interceptors.length) Reflect.defineMetadata(INTERCEPTORS_METADATA, [...interceptors, ...listed(original, INTERCEPTORS_METADATA)], stand);
  // Pipes run inside the stand-in, on the payload only.
  Reflect.defineMetadata(PIPES_METADATA, [], stand);
  return contextCreator.create(
    instance,
    stand,
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
 * Nothing of the user's to run around the handler: skip Nest's pipeline (and its per-call
 * Observables) and call the method. The dispatcher applies the same retry and dead-letter
 * policy to what it throws, so the outcome is the same as through the built-in interceptors.
 */
function directInvoker(instance: object, original: Method, methodName: string, payloadPipe: PipeTransform | undefined): HandlerInvoker {
  const metadata = { type: 'body' as const, metatype: paramType(instance, methodName), data: undefined };
  const settle = (result: unknown) => (isObservable(result) ? lastValueFrom(result, { defaultValue: undefined }) : result);
  if (!payloadPipe) {
    return async (payload, ctx) => settle(await original.call(instance, payload, ctx));
  }
  return async (payload, ctx) =>
    settle(await original.call(instance, withoutValue(payload, ctx) ? payload : await payloadPipe.transform(payload, metadata), ctx));
}

/** A KV delete or purge: there is no value to bind or validate, the handler gets undefined. */
function withoutValue(payload: unknown, ctx: unknown): boolean {
  return payload === undefined && ctx instanceof EventContext && isKvRemovalMessage(ctx);
}

function paramType(instance: object, methodName: string): ArgumentMetadata['metatype'] {
  const host = paramsHost(instance, methodName) as { prototype?: object };
  return payloadParameterType(host.prototype ?? instance, methodName) as ArgumentMetadata['metatype'];
}

/**
 * The method as the pipeline calls it, `(payload, ctx)`, whatever order its parameters are in
 * (`@EventCtx()` first): chosen once per handler, so a message costs no argument array.
 */
function inEventOrder(instance: object, methodName: string, original: Method): Method {
  const host = paramsHost(instance, methodName) as { prototype?: object };
  const proto = host.prototype ?? instance;
  const inOrder = eventParamLayout(proto, methodName).payload === 0;
  if (takesInboxTransaction(proto, methodName)) {
    return inOrder
      ? function (this: unknown, payload: unknown, ctx: unknown) {
          return original.call(this, payload, ctx, inboxTransactionOf(ctx as EventContext | BatchContext));
        }
      : function (this: unknown, payload: unknown, ctx: unknown) {
          return original.call(this, ctx, payload, inboxTransactionOf(ctx as EventContext | BatchContext));
        };
  }
  if (inOrder) return original;
  return function (this: unknown, payload: unknown, ctx: unknown) {
    return original.call(this, ctx, payload);
  };
}

function hasUserEnhancers(appConfig: ApplicationConfig, instance: object, original: Method): boolean {
  const global = appConfig.getGlobalGuards().length + appConfig.getGlobalInterceptors().length + appConfig.getGlobalPipes().length + appConfig.getGlobalFilters().length;
  if (global > 0) return true;
  return [GUARDS_METADATA, INTERCEPTORS_METADATA, PIPES_METADATA, EXCEPTION_FILTERS_METADATA].some(
    (key) => listed(instance.constructor, key).length > 0 || listed(original, key).length > 0,
  );
}

/** What the pipeline calls instead of the method: pipes on the payload, then the method. */
function standIn(original: Method, applyPipes: ((payload: unknown) => Promise<unknown>) | undefined): Method {
  if (!applyPipes) {
    return function (this: unknown, ...args: unknown[]) {
      return original.apply(this, args);
    };
  }
  return async function (this: unknown, payload: unknown, ctx: unknown) {
    return original.call(this, withoutValue(payload, ctx) ? payload : await applyPipes(payload), ctx);
  };
}

/**
 * The payload's pipes as Nest would resolve them (global, class, method, with DI), run through a
 * second, pipes-only context whose one parameter is the payload. Undefined when there are none.
 */
function createPipes(
  contextCreator: ExternalContextCreator,
  appConfig: ApplicationConfig,
  instance: object,
  original: Method,
  methodName: string,
  payloadPipe: PipeTransform | undefined,
): ((payload: unknown) => Promise<unknown>) | undefined {
  const declared = appConfig.getGlobalPipes().length + listed(instance.constructor, PIPES_METADATA).length + listed(original, PIPES_METADATA).length;
  if (declared === 0 && !payloadPipe) return undefined;
  const capture = function (payload: unknown) {
    return payload;
  };
  Reflect.defineMetadata(PIPES_METADATA, [...listed(original, PIPES_METADATA), ...(payloadPipe ? [payloadPipe] : [])], capture);
  // Nest 11's ExternalContextCreator caches parameter metadata per class and method name only
  // (Nest 12 adds the context type and metadata key). Under the method's own name, the handler's
  // context would then reuse this one-parameter entry and call the handler without its context.
  // A name of its own keeps the two apart on both versions; the payload's type is declared
  // under that name too, so pipes still see the class (a ValidationPipe needs it).
  const pipesKey = `${methodName}${PIPES_KEY_SUFFIX}`;
  const host = paramsHost(instance, methodName) as { prototype?: object };
  const proto = host.prototype ?? instance;
  if (!Reflect.hasOwnMetadata(PAYLOAD_ARGS_METADATA, host, pipesKey)) {
    Reflect.defineMetadata(PAYLOAD_ARGS_METADATA, { [`${BODY}:0`]: { index: 0, data: undefined, pipes: [] } }, host, pipesKey);
    Reflect.defineMetadata(PARAMTYPES, [paramType(instance, methodName)], proto, pipesKey);
  }
  return contextCreator.create(
    instance,
    capture,
    pipesKey,
    PAYLOAD_ARGS_METADATA,
    payloadParams,
    undefined,
    undefined,
    { guards: false, interceptors: false, filters: false },
    JETSTREAM_CONTEXT_TYPE,
  );
}

// The class whose prototype declares the method: where Nest reads parameter metadata from.
function paramsHost(instance: object, methodName: string): object {
  let proto = Object.getPrototypeOf(instance) as object | null;
  while (proto && !Object.prototype.hasOwnProperty.call(proto, methodName)) proto = Object.getPrototypeOf(proto) as object | null;
  return (proto?.constructor ?? instance.constructor) as object;
}

function builtInInterceptors(instance: object, original: Method, builtIns: BuiltIns): NestInterceptor[] {
  const declared = [...listed(instance.constructor, INTERCEPTORS_METADATA), ...listed(original, INTERCEPTORS_METADATA)];
  const has = (type: abstract new (...args: never[]) => unknown) =>
    declared.some((i) => i === type || (typeof i === 'function' && i.prototype instanceof type) || i instanceof type);
  const missing: NestInterceptor[] = [];
  if (!has(JetStreamDeadLetterInterceptor)) missing.push(builtIns.deadLetter);
  if (!has(JetStreamRetryInterceptor)) missing.push(builtIns.retry);
  return missing;
}

/** The stand-in carries the method's metadata, so `Reflector` calls on `getHandler()` still work. */
function copyMetadata(from: Method, to: Method): void {
  Object.defineProperty(to, 'name', { value: from.name });
  for (const key of Reflect.getMetadataKeys(from)) Reflect.defineMetadata(key, Reflect.getMetadata(key, from), to);
}

function listed(target: object, key: string): unknown[] {
  return (Reflect.getMetadata(key, target) as unknown[] | undefined) ?? [];
}

function hasExceptionFilters(appConfig: ApplicationConfig, instance: object, callback: object): boolean {
  const own = (target: object) => listed(target, EXCEPTION_FILTERS_METADATA).length > 0;
  return appConfig.getGlobalFilters().length > 0 || own(instance.constructor) || own(callback);
}
