// Type tests of the event contracts: every `@ts-expect-error` line must fail to compile (the
// typecheck and ts-jest both fail on an unused one), every other line must compile. The runtime
// assertions only check that the typed facades reach the untyped API underneath.
import 'reflect-metadata';
import { z } from 'zod';
import { IsString } from 'class-validator';
import { defineEvents, EventContext, JetStreamPublisher, typedOnEvent, typedPublisher, type EventOutput, type MatchingSubjects, type PublishOptions } from '../../lib/index.js';

const OrderCreated = z.object({ id: z.string(), qty: z.number().default(1), at: z.iso.datetime().transform((s) => new Date(s)) });
const OrderCancelled = z.object({ id: z.string(), reason: z.string() });
class UserSignedUp {
  @IsString() userId!: string;
}

const events = defineEvents({
  'orders.created': { schema: OrderCreated, name: 'orders.OrderCreated', version: 2, upcast: { 1: (v1: { id: string }) => ({ ...v1, at: '2026-01-01T00:00:00Z' }) } },
  'orders.cancelled': OrderCancelled,
  'users.signed-up': UserSignedUp,
});

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const assertType = <T extends true>(): T => true as T;

type Created = EventOutput<(typeof events.definitions)['orders.created']>;
assertType<Equal<Created, { id: string; qty: number; at: Date }>>();
assertType<Equal<MatchingSubjects<'orders.created' | 'orders.cancelled' | 'users.signed-up', 'orders.*'>, 'orders.created' | 'orders.cancelled'>>();
assertType<Equal<MatchingSubjects<'a.b.c' | 'a.b' | 'x.b', 'a.>'>, 'a.b.c' | 'a.b'>>();
assertType<Equal<MatchingSubjects<'a.b', 'a.b.>'>, never>>();

function publishes(publisher: JetStreamPublisher) {
  const typed = events.publisher(publisher);
  // The input type of the schema: `qty` has a default, `at` is the ISO string before the transform.
  void typed.publish('orders.created', { id: 'o-1', at: '2026-12-02T00:00:00Z' });
  void typed.publish('orders.cancelled', { id: 'o-1', reason: 'changed mind' });
  void typed.publish('users.signed-up', { userId: 'u-1' });
  // @ts-expect-error a subject outside the map
  void typed.publish('orders.shipped', { id: 'o-1' });
  // @ts-expect-error a payload of the wrong type
  void typed.publish('orders.created', { id: 1, at: '2026-12-02T00:00:00Z' });
  // @ts-expect-error a missing field
  void typed.publish('orders.cancelled', { id: 'o-1' });
  // @ts-expect-error the output type (a Date) is not what producers send
  void typed.publish('orders.created', { id: 'o-1', at: new Date() });
  // The untyped API keeps working beside it.
  void publisher.publish('anything.at.all', { whatever: true });
}

interface MapAsInterface {
  'billing.invoiced': { invoiceId: string; amount: number };
  'billing.paid': { invoiceId: string };
}
function publishesFromAnInterface(publisher: JetStreamPublisher) {
  const typed = typedPublisher<MapAsInterface>(publisher);
  void typed.publish('billing.paid', { invoiceId: 'i-1' });
  // @ts-expect-error amount is a number
  void typed.publish('billing.invoiced', { invoiceId: 'i-1', amount: '12' });
}
const on = typedOnEvent<MapAsInterface>();

class Handlers {
  @events.on('orders.created', { durable: 'typed' })
  created(order: Created, _ctx: EventContext) {
    return order.at.getTime();
  }

  @events.on('orders.cancelled')
  cancelledWithoutContext(order: { id: string }) {
    return order.id;
  }

  // @ts-expect-error the handler's parameter does not accept the subject's payload
  @events.on('orders.cancelled')
  wrongPayload(order: { id: number }, _ctx: EventContext) {
    return order;
  }

  // @ts-expect-error a subject outside the map
  @events.on('orders.shipped')
  unknownSubject(order: unknown) {
    return order;
  }

  @events.on('orders.*')
  anyOrder(order: Created | { id: string; reason: string }) {
    return order.id;
  }

  // @ts-expect-error a wildcard handler must accept the union: this one takes only cancellations
  @events.on('orders.*')
  tooNarrow(order: { reason: string }) {
    return order;
  }

  @on('billing.>')
  billing(event: MapAsInterface['billing.invoiced'] | MapAsInterface['billing.paid']) {
    return event.invoiceId;
  }

  // @ts-expect-error paid events have no amount
  @on('billing.>')
  billingTooNarrow(event: { amount: number }) {
    return event;
  }
}

describe('event contracts (type tests: this file compiles only if each @ts-expect-error line fails)', () => {
  it('typed publishers stamp the contract and go through the untyped publisher', async () => {
    const calls: Array<{ subject: string; payload: unknown; options?: PublishOptions }> = [];
    const fake = { publish: async (subject: string, payload: unknown, options?: PublishOptions) => (calls.push({ subject, payload, options }), { stream: 'S', seq: 1, duplicate: false }) };
    await events.publisher(fake as unknown as JetStreamPublisher).publish('orders.created', { id: 'o-1', at: '2026-12-02T00:00:00Z' }, { msgId: 'm-1' });
    await events.publisher(fake as unknown as JetStreamPublisher).publish('orders.cancelled', { id: 'o-1', reason: 'r' });
    expect(calls[0].options).toEqual({ msgId: 'm-1', codec: undefined, headers: { 'Jetstream-Schema': 'orders.OrderCreated', 'Jetstream-Schema-Version': '2' } });
    expect(calls[1].options).toBeUndefined();
    expect(typeof publishes).toBe('function');
    expect(typeof publishesFromAnInterface).toBe('function');
    expect(Object.getOwnPropertyNames(Handlers.prototype)).toContain('created');
  });
});
