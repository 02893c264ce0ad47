// AsyncAPI from Standard Schema handlers: the payload from the library's own JSON Schema (Zod 4's
// Standard JSON Schema), the codec's content type, and each versioned message's accepted versions.
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import * as v from 'valibot';
import { z } from 'zod';
import { createAsyncApiDocument, defineEvents, JetStreamModule, msgpackCodec, OnEvent } from '../../lib/index.js';
import { asyncApiSchemaErrors } from '../support/asyncapi-validator.js';

const OrderV2 = z.object({ id: z.uuid(), total: z.object({ amount: z.number().positive(), currency: z.string().length(3) }), note: z.string().optional() });
const events = defineEvents({
  'orders.placed': { schema: OrderV2, name: 'orders.OrderPlaced', version: 3, upcast: { 1: (o: object) => o, 2: (o: object) => o } },
  'orders.shipped': { schema: z.object({ id: z.string().transform((s) => s.trim()) }), codec: msgpackCodec },
});

@Injectable()
class Handlers {
  @events.on('orders.placed', { durable: 'placed' })
  placed(_order: z.output<typeof OrderV2>) {}

  @events.on('orders.shipped', { durable: 'shipped' })
  shipped(_order: { id: string }) {}

  @OnEvent('audit.logged', { durable: 'audit', schema: v.object({ who: v.string() }) })
  audited(_entry: { who: string }) {}
}

@Module({ imports: [JetStreamModule.forRoot({ servers: 'nats://127.0.0.1:1', streams: [{ name: 'ORDERS', subjects: ['orders.>', 'audit.>'] }] })], providers: [Handlers] })
class AppModule {}

describe('AsyncAPI of Standard Schema handlers', () => {
  it('payload from the schema library, content type from the codec, versions listed; a valid AsyncAPI 3 document', async () => {
    const doc = await createAsyncApiDocument(AppModule, { title: 'Orders', version: '1.0.0' });
    expect(asyncApiSchemaErrors(doc)).toEqual([]);
    const placed = doc.components.messages.orders_OrderPlaced_v3;
    expect(placed).toMatchObject({ title: 'orders.OrderPlaced', contentType: 'application/json', 'x-jetstream-schema': { name: 'orders.OrderPlaced', version: 3, accepts: [1, 2, 3] } });
    expect(placed.payload).toMatchObject({
      type: 'object',
      required: ['id', 'total'],
      properties: { id: { type: 'string', format: 'uuid' }, total: { type: 'object', properties: { currency: { type: 'string', minLength: 3, maxLength: 3 } } } },
    });
    const shipped = Object.values(doc.components.messages).find((m) => m.contentType === 'application/msgpack');
    // The input side: what producers send, before the transform.
    expect(shipped?.payload).toMatchObject({ type: 'object', properties: { id: { type: 'string' } } });
    const audit = Object.values(doc.components.messages).find((m) => JSON.stringify(m.payload).includes('valibot'));
    expect(audit?.payload).toEqual({ description: 'Validated by a valibot schema; valibot offers no Standard JSON Schema, so the shape is not listed here' });
  });
});

describe('AsyncAPI of a batch handler with a Standard Schema', () => {
  it('describes one message of the batch by the schema, with the batch limits and the inbox’s exactly-once', async () => {
    const Tick = z.object({ symbol: z.string(), price: z.number().positive() });
    @Injectable()
    class Ticks {
      @OnEvent('ticks.*', { durable: 'ticks', inbox: true, schema: Tick, batch: { maxMessages: 100 } })
      store(_ticks: Array<z.output<typeof Tick>>) {}
    }
    @Module({ imports: [JetStreamModule.forRoot({ servers: 'nats://127.0.0.1:1', streams: [{ name: 'TICKS', subjects: ['ticks.>'] }] })], providers: [Ticks] })
    class TicksModule {}
    const doc = await createAsyncApiDocument(TicksModule, { title: 'Ticks', version: '1.0.0' });
    expect(asyncApiSchemaErrors(doc)).toEqual([]);
    const op = doc.operations.Ticks_store;
    expect({ batch: op['x-jetstream-batch'], delivery: op['x-jetstream-delivery'] }).toEqual({ batch: { maxMessages: 100, maxWaitMs: 50 }, delivery: 'exactly-once' });
    const message = doc.components.messages[op.messages[0].$ref.split('/').pop()!];
    // One item, not the array the handler takes.
    expect(message.payload).toMatchObject({ type: 'object', required: ['symbol', 'price'], properties: { symbol: { type: 'string' }, price: { type: 'number' } } });
  });
});
