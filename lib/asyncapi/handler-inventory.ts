import type { INestApplicationContext } from '@nestjs/common';
import { MetadataScanner, ModulesContainer } from '@nestjs/core';
import type { OnEventOptions, ResolvedHandlerOptions } from '../decorators/on-event-options.js';
import { readOnEventHandlers } from '../discovery/on-event-metadata.accessor.js';
import { resolveHandlerOptions } from '../discovery/resolve-handler-options.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import type { JetStreamModuleOptions, StreamDefinition } from '../options/jetstream-module-options.js';
import { JETSTREAM_MODULE_OPTIONS } from '../module/jetstream-module-definition.js';
import { DEFAULT_CONNECTION, JETSTREAM_CONNECTION_NAME } from '../options/jetstream.tokens.js';
import { assertFilterSubject, subjectCovers } from '../options/subject-validation.js';
import { payloadParameterIndex, readPatternMetadata } from './pattern-metadata.js';

/**
 * A handler consuming from JetStream as the application declares it, found without running
 * anything: an `@OnEvent`, or an `@EventPattern` that JetStreamServer would serve.
 */
export interface DeclaredHandler {
  readonly source: '@OnEvent' | '@EventPattern';
  /** `Class.method`. */
  readonly handlerId: string;
  /** The name the consumer engine gives the handler; default dead-letter subjects derive from it. */
  readonly engineId: string;
  readonly subject: string;
  /** The named connection of an `@OnEvent`; undefined for JetStreamServer's handlers. */
  readonly connection: string | undefined;
  readonly options: ResolvedHandlerOptions;
  /** Declared type of the first parameter, from `design:paramtypes`. */
  readonly payloadType: unknown;
  /** From the `stream` option, or the one stream of the module's options capturing the subject. */
  readonly stream: string | undefined;
}

/** A `@MessagePattern` handler: it answers core NATS requests, it does not consume a stream. */
export interface DeclaredRequestHandler {
  readonly handlerId: string;
  readonly subject: string;
  readonly payloadType: unknown;
  /** `design:returntype`; a Promise or Observable says nothing about what it resolves to. */
  readonly returnType: unknown;
}

/** What the application gives JetStreamServer, which the inspected modules cannot tell. */
export interface AsyncApiTransportOptions {
  readonly streams?: readonly StreamDefinition[];
  readonly defaults?: JetStreamModuleOptions['defaults'];
}

export interface DeclaredConnection {
  readonly name: string;
  /** Undefined when the options come from a factory that has not run (forRootAsync in preview). */
  readonly options: JetStreamModuleOptions | undefined;
}

export interface HandlerInventory {
  readonly handlers: DeclaredHandler[];
  readonly requestHandlers: DeclaredRequestHandler[];
  readonly connections: DeclaredConnection[];
}

/** What a Nest module holds, as far as this inventory reads it. */
interface ModuleLike {
  readonly providers: Map<unknown, WrapperLike>;
  readonly controllers: Map<unknown, WrapperLike>;
}

interface WrapperLike {
  readonly token?: unknown;
  readonly metatype?: unknown;
  readonly instance?: unknown;
  readonly inject?: unknown;
}

/**
 * Reads every `@OnEvent` of an application context from its classes' metadata (wrappers'
 * metatypes, not instances), so it also works on a context created with `preview: true`, where
 * no provider was instantiated and nothing connected. Controllers' `@EventPattern` and
 * `@MessagePattern` handlers are read too (Nest binds pattern handlers on controllers only).
 */
export function inventoryHandlers(app: INestApplicationContext, transport: AsyncApiTransportOptions = {}): HandlerInventory {
  const modules = [...(app.get(ModulesContainer, { strict: false }).values() as Iterable<ModuleLike>)];
  const connections = findConnections(modules);
  const optionsOf = new Map(connections.map((c) => [c.name, c.options]));
  const scanner = new MetadataScanner();
  const seen = new Set<unknown>();
  const handlers: DeclaredHandler[] = [];
  const requestHandlers: DeclaredRequestHandler[] = [];
  for (const module of modules) {
    const controllers = new Set([...module.controllers.values()]);
    for (const wrapper of [...module.providers.values(), ...controllers]) {
      const cls = classOf(wrapper);
      if (!cls || seen.has(cls)) continue;
      seen.add(cls);
      const prototype = cls.prototype as object;
      if (controllers.has(wrapper)) {
        for (const methodName of scanner.getAllMethodNames(prototype)) {
          collectPatterns(cls, methodName, (prototype as Record<string, unknown>)[methodName], transport, handlers, requestHandlers);
        }
      }
      for (const { handlerId, subject, options, payloadType } of readOnEventHandlers(prototype, cls.name)) {
        const connection = connectionOf(options);
        const moduleOptions = optionsOf.get(connection);
        const resolved = resolveHandlerOptions(handlerId, moduleOptions?.defaults ?? {}, options);
        handlers.push({
          source: '@OnEvent',
          handlerId,
          engineId: handlerId,
          subject,
          connection,
          options: resolved,
          payloadType,
          stream: resolved.stream ?? streamFor(subject, moduleOptions?.streams ?? []),
        });
      }
    }
  }
  return { handlers, requestHandlers, connections };
}

function collectPatterns(
  cls: abstract new (...args: never[]) => unknown,
  methodName: string,
  method: unknown,
  transport: AsyncApiTransportOptions,
  handlers: DeclaredHandler[],
  requestHandlers: DeclaredRequestHandler[],
): void {
  const pattern = readPatternMetadata(method);
  if (!pattern) return;
  const handlerId = `${cls.name}.${methodName}`;
  const decorator = pattern.kind === 'event' ? '@EventPattern' : '@MessagePattern';
  const prototype = cls.prototype as object;
  const paramTypes: unknown[] = Reflect.getMetadata('design:paramtypes', prototype, methodName) ?? [];
  const payloadType = paramTypes[payloadParameterIndex(cls, methodName)];
  for (const subject of pattern.subjects) {
    // JetStreamServer checks every pattern as a subject filter before it starts.
    try {
      assertFilterSubject(subject);
    } catch (err) {
      throw new InvalidOptionsError(`${decorator} on ${handlerId}: ${(err as Error).message}`);
    }
    if (pattern.kind === 'message') {
      requestHandlers.push({ handlerId, subject, payloadType, returnType: Reflect.getMetadata('design:returntype', prototype, methodName) });
      continue;
    }
    // The server's own handler id: its consumer, logs and default dead-letter subject use it.
    const engineId = `@EventPattern(${subject})`;
    const options = resolveHandlerOptions(`${handlerId} (${engineId})`, transport.defaults ?? {}, pattern.extras as OnEventOptions);
    handlers.push({
      source: '@EventPattern',
      handlerId,
      engineId,
      subject,
      connection: undefined,
      options,
      payloadType,
      stream: options.stream ?? streamFor(subject, transport.streams ?? []),
    });
  }
}

// Named connections are an option some handlers carry; read it without depending on its type.
function connectionOf(options: OnEventOptions): string {
  const name = (options as { connection?: unknown }).connection;
  return typeof name === 'string' && name.length > 0 ? name : DEFAULT_CONNECTION;
}

function classOf(wrapper: WrapperLike): (abstract new (...args: never[]) => unknown) | undefined {
  // A factory's metatype is the factory function, not the class of what it returns.
  const candidate = wrapper.inject ? constructorOf(wrapper.instance) : (wrapper.metatype ?? constructorOf(wrapper.instance));
  if (typeof candidate !== 'function' || candidate === Object || !candidate.prototype) return undefined;
  return candidate as abstract new (...args: never[]) => unknown;
}

function constructorOf(instance: unknown): unknown {
  return instance && typeof instance === 'object' ? instance.constructor : undefined;
}

function findConnections(modules: ModuleLike[]): DeclaredConnection[] {
  const found: DeclaredConnection[] = [];
  for (const module of modules) {
    const optionsWrapper = findProvider(module, JETSTREAM_MODULE_OPTIONS);
    if (!optionsWrapper) continue;
    const nameValue = findProvider(module, JETSTREAM_CONNECTION_NAME)?.instance;
    const options = optionsWrapper.instance;
    found.push({
      name: typeof nameValue === 'string' ? nameValue : DEFAULT_CONNECTION,
      options: options && typeof options === 'object' ? (options as JetStreamModuleOptions) : undefined,
    });
  }
  return found;
}

/**
 * Tokens are compared by identity, then by description: the application may load its own copy
 * of this package (the CLI's and the app's node_modules differ), and symbols are per copy.
 */
function findProvider(module: ModuleLike, token: unknown): WrapperLike | undefined {
  const exact = module.providers.get(token);
  if (exact) return exact;
  const wanted = String(token);
  for (const [key, wrapper] of module.providers) {
    if ((typeof key === 'symbol' || typeof key === 'string') && String(key) === wanted) return wrapper;
  }
  return undefined;
}

/** The one declared stream that captures `subject`; undefined when none or several do. */
export function streamFor(subject: string, streams: readonly StreamDefinition[]): string | undefined {
  const covering = streams.filter((s) => Array.isArray(s.subjects) && s.subjects.some((outer) => subjectCovers(outer, subject)));
  return covering.length === 1 ? covering[0].name : undefined;
}
