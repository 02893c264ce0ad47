// Versioned contracts on a real server: typed publishers stamp the schema name and version, a v2
// handler upcasts v1 messages before its schema validates them, and a message it cannot read (a
// newer version, another schema, no upcaster) is dead-lettered as unsupported-schema.
import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { DeadLetterHeaders, defineEvents, EventContext, SCHEMA_NAME_HEADER, SCHEMA_VERSION_HEADER } from '../../lib/index.js';
import { recordHandled } from '../../lib/testing/index.js';
import { testNatsUrl, waitFor } from '../harness/index.js';
import { freshStream, sharedServerHooks, waitForDeadLetters } from './kit.js';

const hooks = sharedServerHooks();

const OrderV1 = z.object({ id: z.string(), amount: z.number() });
const OrderV2 = z.object({ id: z.string(), total: z.object({ amount: z.number(), currency: z.string() }) });
const OrderV3 = z.object({ id: z.string(), lines: z.array(z.string()) });

function contracts(subject: string) {
  const name = 'orders.OrderPlaced';
  return {
    v1: defineEvents({ [subject]: { schema: OrderV1, name, version: 1 } }),
    v2: defineEvents({
      [subject]: {
        schema: OrderV2,
        name,
        version: 2,
        upcast: { 1: (v1: z.output<typeof OrderV1>) => ({ id: v1.id, total: { amount: v1.amount, currency: 'EUR' } }) },
      },
    }),
    v3: defineEvents({ [subject]: { schema: OrderV3, name, version: 3 } }),
    other: defineEvents({ [subject]: { schema: OrderV2, name: 'billing.Invoice', version: 2 } }),
  };
}

async function v2Consumer(prefix: string) {
  const names = await freshStream(hooks.client.jsm, prefix);
  const subject = names.subject('orders.placed');
  const c = contracts(subject);
  const seen: Array<z.output<typeof OrderV2>> = [];
  @Injectable()
  class V2Handler {
    @c.v2.on(subject, { durable: 'v2', dlq: names.dlq })
    handle(order: z.output<typeof OrderV2>, _ctx: EventContext) {
      seen.push(order);
    }
  }
  const app = await hooks.apps.start({ servers: testNatsUrl() }, [V2Handler]);
  return { app, names, subject, c, seen };
}

describe('schema versions and upcasting', () => {
  it('a v1 producer and a v2 producer: the v2 handler gets both as v2 (v1 upcast before validation)', async () => {
    const { app, names, subject, c, seen } = await v2Consumer('VERUP');
    const v1 = await c.v1.publisher(app.publisher).publish(subject, { id: 'old', amount: 12 });
    await c.v2.publisher(app.publisher).publish(subject, { id: 'new', total: { amount: 5, currency: 'USD' } });
    await waitFor(() => seen.length === 2, { timeoutMs: 15_000, message: 'both orders handled' });
    expect(seen).toEqual([
      { id: 'old', total: { amount: 12, currency: 'EUR' } },
      { id: 'new', total: { amount: 5, currency: 'USD' } },
    ]);
    const stored = await hooks.client.jsm.streams.getMessage(names.stream, { seq: v1.seq });
    expect(stored!.header.get(SCHEMA_NAME_HEADER)).toBe('orders.OrderPlaced');
    expect(stored!.header.get(SCHEMA_VERSION_HEADER)).toBe('1');
  });

  it('a v3 message, another schema name and a malformed version are dead-lettered as unsupported-schema, never handled', async () => {
    const { app, names, subject, c, seen } = await v2Consumer('VERNEW');
    const handled = recordHandled(app.inner.app);
    await c.v3.publisher(app.publisher).publish(subject, { id: 'future', lines: ['a'] });
    await c.other.publisher(app.publisher).publish(subject, { id: 'x', total: { amount: 1, currency: 'EUR' } });
    await app.publisher.publish(subject, { id: 'y', total: { amount: 1, currency: 'EUR' } }, { headers: { [SCHEMA_VERSION_HEADER]: 'two' } });
    const letters = await waitForDeadLetters(app, names.dlqStream, 3);
    expect(letters.map((l) => l.reason)).toEqual(['unsupported-schema', 'unsupported-schema', 'unsupported-schema']);
    expect(letters.map((l) => l.attempts)).toEqual([1, 1, 1]);
    const messages = letters.map((l) => l.headers[DeadLetterHeaders.ErrorMessage][0]);
    expect(messages[0]).toBe('Message has schema "orders.OrderPlaced" version 3, newer than the handler\'s version 2');
    expect(messages[1]).toBe('Message has schema "billing.Invoice", the handler reads "orders.OrderPlaced"');
    expect(messages[2]).toBe('Message has schema version "two", not a positive integer');
    expect(letters[0].headers[SCHEMA_VERSION_HEADER]).toEqual(['3']);
    expect((await handled.waitForDeadLetter()).reason).toBe('unsupported-schema');
    expect(seen).toEqual([]);
  });

  it('an older version without an upcaster is unsupported-schema; an unstamped message counts as the handler version', async () => {
    const names = await freshStream(hooks.client.jsm, 'VERGAP');
    const subject = names.subject('orders.placed');
    const seen: unknown[] = [];
    const v3 = defineEvents({ [subject]: { schema: OrderV3, name: 'orders.OrderPlaced', version: 3, upcast: { 2: (v2: { id: string }) => ({ id: v2.id, lines: [] }) } } });
    @Injectable()
    class V3Handler {
      @v3.on(subject, { durable: 'v3', dlq: names.dlq })
      handle(order: z.output<typeof OrderV3>) {
        seen.push(order);
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [V3Handler]);
    await contracts(subject).v1.publisher(app.publisher).publish(subject, { id: 'v1', amount: 1 });
    await contracts(subject).v2.publisher(app.publisher).publish(subject, { id: 'v2', total: { amount: 1, currency: 'EUR' } });
    await app.publisher.publish(subject, { id: 'plain', lines: ['x'] });
    const [letter] = await waitForDeadLetters(app, names.dlqStream, 1);
    expect(letter.reason).toBe('unsupported-schema');
    expect(letter.headers[DeadLetterHeaders.ErrorMessage][0]).toBe('Message has schema "orders.OrderPlaced" version 1; the handler reads version 3 and has no upcaster from version 1');
    await waitFor(() => seen.length === 2, { timeoutMs: 15_000, message: 'v2 and the unstamped message handled' });
    expect(seen).toEqual([
      { id: 'v2', lines: [] },
      { id: 'plain', lines: ['x'] },
    ]);
  });
});
