import type { StandardSchemaV1 } from '@standard-schema/spec';
import { OnEvent } from '../decorators/on-event.decorator.js';
import type { OnEventOptions, Upcaster } from '../decorators/on-event-options.js';
import type { JetStreamPublisher } from '../producer/jetstream-publisher.js';
import type { Codec } from '../wire/codec.js';
import type { MatchingSubjects } from './subject-match.js';
import { TypedPublisher } from './typed-publisher.js';

/** A payload class (bound and validated with class-validator), as `@OnEvent` handlers use today. */
export type PayloadClass = abstract new (...args: never[]) => object;

/** What a contract types a subject's payload by: a Standard Schema (Zod, Valibot, ...) or a class. */
export type PayloadSpec = StandardSchemaV1 | PayloadClass;

/** One subject's contract: its payload, and optionally the schema name and version it is at. */
export interface EventDefinition<Spec extends PayloadSpec = PayloadSpec> {
  readonly schema: Spec;
  /** Stamped on each message as `Jetstream-Schema`; handlers refuse messages of another name. */
  readonly name?: string;
  /** The version producers stamp (`Jetstream-Schema-Version`) and handlers read; an integer >= 1. */
  readonly version?: number;
  /** Upcasters from older versions, by the version they start from: `{ 1: (v1) => v2 }`. */
  readonly upcast?: Readonly<Record<number, Upcaster>>;
  /** Codec of this subject's messages; default the module's. */
  readonly codec?: Codec;
}

export type EventMapDefinition = Readonly<Record<string, PayloadSpec | EventDefinition>>;

type SpecOf<Entry> = Entry extends EventDefinition<infer Spec> ? Spec : Entry;

/** What a producer sends for a contract entry: a schema's input type, or the class's instance type. */
export type EventInput<Entry> =
  SpecOf<Entry> extends StandardSchemaV1 ? StandardSchemaV1.InferInput<SpecOf<Entry>> : SpecOf<Entry> extends PayloadClass ? InstanceType<SpecOf<Entry>> : never;

/** What a handler gets for a contract entry: a schema's output type (transforms applied), or the class. */
export type EventOutput<Entry> =
  SpecOf<Entry> extends StandardSchemaV1 ? StandardSchemaV1.InferOutput<SpecOf<Entry>> : SpecOf<Entry> extends PayloadClass ? InstanceType<SpecOf<Entry>> : never;

/** Subject → payload type that producers send. */
export type EventInputs<Map extends EventMapDefinition> = { [Subject in keyof Map & string]: EventInput<Map[Subject]> };

/**
 * A method decorator that accepts only methods whose first parameter can take `Payload`. The
 * rest are `never[]` so the second parameter can be the `EventContext` (or absent).
 */
export type TypedHandlerDecorator<Payload> = <Method extends (payload: Payload, ...rest: never[]) => unknown>(
  target: object,
  key: string | symbol,
  descriptor: TypedPropertyDescriptor<Method>,
) => TypedPropertyDescriptor<Method> | void;

/** A subject of the map, or a wildcard pattern that matches at least one of them. */
export type KnownPattern<Subjects extends string, Pattern extends string> = [MatchingSubjects<Subjects, Pattern>] extends [never] ? never : Pattern;

/**
 * The contracts of an application's events, built by `defineEvents`. It types the publisher
 * (`events.publisher(publisher)`) and the handlers (`@events.on('orders.created')`), and carries
 * the schemas, versions and codecs both sides apply at run time.
 */
export class EventContracts<Map extends EventMapDefinition> {
  constructor(readonly definitions: Map) {}

  /** The publisher, typed: known subjects only, each with its payload type; stamps schema headers. */
  publisher(publisher: JetStreamPublisher): TypedPublisher<EventInputs<Map>> {
    return new TypedPublisher<EventInputs<Map>>(publisher, (subject) => this.definition(subject));
  }

  /**
   * `@OnEvent` bound to the contract: on a known subject, the handler's first parameter must
   * accept the subject's payload (a schema's output type), and the schema, version and
   * upcasters apply. On a wildcard, the payload is the union of the matching subjects' payloads;
   * no schema applies then (each subject has its own), so validate in the handler if needed.
   */
  on<Pattern extends string>(
    pattern: KnownPattern<keyof Map & string, Pattern>,
    options: OnEventOptions = {},
  ): TypedHandlerDecorator<EventOutput<Map[MatchingSubjects<keyof Map & string, Pattern>]>> {
    const definition = this.definition(pattern);
    const decorator = OnEvent(pattern, definition ? { ...handlerOptions(definition), ...options } : options);
    return decorator as TypedHandlerDecorator<EventOutput<Map[MatchingSubjects<keyof Map & string, Pattern>]>>;
  }

  /** The definition of a subject of the map (a bare schema or class widened to `{ schema }`). */
  definition(subject: string): EventDefinition | undefined {
    if (!Object.prototype.hasOwnProperty.call(this.definitions, subject)) return undefined;
    const entry = this.definitions[subject];
    return isDefinition(entry) ? entry : { schema: entry };
  }
}

function isDefinition(entry: PayloadSpec | EventDefinition): entry is EventDefinition {
  return typeof entry === 'object' && entry !== null && !('~standard' in entry) && 'schema' in entry;
}

function isStandardSchema(spec: PayloadSpec): spec is StandardSchemaV1 {
  return typeof spec === 'object' && spec !== null && '~standard' in spec;
}

function handlerOptions(definition: EventDefinition): OnEventOptions {
  const options: OnEventOptions = {};
  // A class payload is bound from the parameter's declared type, as on a plain @OnEvent.
  if (isStandardSchema(definition.schema)) options.schema = definition.schema;
  if (definition.codec) options.codec = definition.codec;
  if (definition.version !== undefined) options.schemaVersion = { name: definition.name, version: definition.version, upcast: definition.upcast };
  return options;
}

/**
 * Declares the application's events: subject → payload schema or class, or a full definition
 * with a schema name, a version and upcasters. Zod and Valibot schemas are Standard Schemas.
 *
 *   export const events = defineEvents({
 *     'orders.created': { schema: OrderCreated, name: 'orders.OrderCreated', version: 2, upcast: { 1: fromV1 } },
 *     'orders.cancelled': OrderCancelled,
 *   });
 */
export function defineEvents<const Map extends EventMapDefinition>(definitions: Map): EventContracts<Map> {
  return new EventContracts(definitions);
}

/**
 * The untyped-at-run-time way to type handlers against an event map declared as an interface
 * (subject → payload type): `const on = typedOnEvent<MyEvents>(); @on('orders.created') ...`.
 * Only types: no schema or version applies (an interface has none at run time).
 */
export function typedOnEvent<Events extends object>(): <Pattern extends string>(
  pattern: KnownPattern<keyof Events & string, Pattern>,
  options?: OnEventOptions,
) => TypedHandlerDecorator<Events[MatchingSubjects<keyof Events & string, Pattern> & keyof Events]> {
  return <Pattern extends string>(
    pattern: KnownPattern<keyof Events & string, Pattern>,
    options: OnEventOptions = {},
  ): TypedHandlerDecorator<Events[MatchingSubjects<keyof Events & string, Pattern> & keyof Events]> =>
    OnEvent(pattern, options) as TypedHandlerDecorator<Events[MatchingSubjects<keyof Events & string, Pattern> & keyof Events]>;
}
