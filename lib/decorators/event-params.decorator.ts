/**
 * `@EventPayload()` and `@EventCtx()`: which of an `@OnEvent` handler's first two parameters is
 * the payload and which the `EventContext`. Without them the order is `(payload, ctx)`. Named
 * apart from `@nestjs/microservices`' `@Payload()`/`@Ctx()`: that package is an optional peer,
 * and its decorators take property keys and pipes this module does not apply.
 */

const EVENT_PARAMS_METADATA = 'nestjs-jetstream:event-params';

/** Where the payload and the context go in the handler's arguments: the first two, either order. */
export interface EventParamLayout {
  readonly payload: 0 | 1;
  readonly context: 0 | 1;
}

type Marks = { payload?: number; context?: number };

const POSITIONAL: EventParamLayout = { payload: 0, context: 1 };

/** The payload parameter; pipes (a global `ValidationPipe` included) see its declared class. */
export function EventPayload(): ParameterDecorator {
  return mark('payload', '@EventPayload()');
}

/** The `EventContext` parameter. */
export function EventCtx(): ParameterDecorator {
  return mark('context', '@EventCtx()');
}

function mark(role: keyof Marks, name: string): ParameterDecorator {
  return (target, key, index) => {
    if (key === undefined) throw new TypeError(`${name} goes on a handler method's parameter, not a constructor's`);
    const where = `${(target as { constructor: { name: string } }).constructor.name}.${String(key)}`;
    if (index > 1) throw new TypeError(`${name} on ${where}: the payload and the context are the first two parameters (got parameter ${index})`);
    const marks: Marks = { ...(Reflect.getOwnMetadata(EVENT_PARAMS_METADATA, target, key) as Marks | undefined) };
    const other = role === 'payload' ? marks.context : marks.payload;
    if (marks[role] !== undefined || other === index) throw new TypeError(`${name} on ${where}: each of @EventPayload() and @EventCtx() marks one parameter, once`);
    marks[role] = index;
    Reflect.defineMetadata(EVENT_PARAMS_METADATA, marks, target, key);
  };
}

/** The handler's layout: the marked parameters, the unmarked one taking the remaining place. */
export function eventParamLayout(prototype: object, methodName: string | symbol): EventParamLayout {
  const marks = Reflect.getMetadata(EVENT_PARAMS_METADATA, prototype, methodName) as Marks | undefined;
  if (!marks) return POSITIONAL;
  const payload = marks.payload ?? (marks.context === 0 ? 1 : 0);
  return payload === 0 ? POSITIONAL : { payload: 1, context: 0 };
}

/** The payload parameter's declared type (`design:paramtypes`): what pipes and the codec bind to. */
export function payloadParameterType(prototype: object, methodName: string | symbol): unknown {
  const types = Reflect.getMetadata('design:paramtypes', prototype, methodName) as unknown[] | undefined;
  return types?.[eventParamLayout(prototype, methodName).payload];
}

const INBOX_TRANSACTION_METADATA = 'nestjs-jetstream:inbox-transaction';

/**
 * The transaction of an inbox handler (`@OnEvent(…, { inbox: true })`), as the database given
 * to the module hands it out: a `pg` `PoolClient`, a TypeORM `EntityManager`, a Kysely
 * `Transaction`… Declare the parameter with that type. It is the third parameter, after the
 * payload and the context; its writes commit together with the message's inbox row.
 */
export function InboxTransaction(): ParameterDecorator {
  return (target, key, index) => {
    if (key === undefined) throw new TypeError('@InboxTransaction() goes on a handler method\'s parameter, not a constructor\'s');
    const where = `${(target as { constructor: { name: string } }).constructor.name}.${String(key)}`;
    if (index !== 2) throw new TypeError(`@InboxTransaction() on ${where}: the transaction is the third parameter, after the payload and the context (got parameter ${index})`);
    Reflect.defineMetadata(INBOX_TRANSACTION_METADATA, index, target, key);
  };
}

/** Whether the handler takes the inbox transaction (`@InboxTransaction()`) as its third parameter. */
export function takesInboxTransaction(prototype: object, methodName: string | symbol): boolean {
  return Reflect.getMetadata(INBOX_TRANSACTION_METADATA, prototype, methodName) !== undefined;
}
