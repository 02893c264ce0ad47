// The microservices transport with codecs: @EventPattern handlers decode msgpack from a
// JetStreamClient configured with it; @MessagePattern requests stay JSON and refuse another
// content type with an error that says so, instead of failing to parse.
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { encode } from '@msgpack/msgpack';
import { lastValueFrom } from 'rxjs';
import { CONTENT_TYPE_HEADER, msgpackCodec } from '../../lib/index.js';
import { JetStreamClient } from '../../lib/transport/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { TransportKit } from './transport-kit.js';

const kit = TransportKit.hooks();

it('@EventPattern gets msgpack events from a JetStreamClient with { codec: msgpackCodec }', async () => {
  const { stream, subject } = await kit.freshStream('TCODEC');
  const seen: unknown[] = [];
  @Controller()
  class Events {
    @EventPattern(subject('created'), { durable: 'tcodec' })
    created(@Payload() order: unknown) {
      seen.push(order);
    }
  }
  @Module({ controllers: [Events] })
  class AppModule {}
  await kit.microservice(AppModule, { servers: testNatsUrl(), codecs: [msgpackCodec] });
  const client = new JetStreamClient({ servers: testNatsUrl(), codec: msgpackCodec });
  kit.onClose(() => client.close());
  const ack = await lastValueFrom(client.emit(subject('created'), { id: 'o-1', qty: 2 }));
  await waitFor(() => seen.length === 1, { timeoutMs: 15_000, message: 'the event handled' });
  expect(seen[0]).toEqual({ id: 'o-1', qty: 2 });
  const stored = await kit.jsm.streams.getMessage(stream, { seq: (ack as { seq: number }).seq });
  expect(stored!.header.get(CONTENT_TYPE_HEADER)).toBe('application/msgpack');
});

it('@MessagePattern refuses a msgpack request with a clear error', async () => {
  const prefix = uniqueName('tcrr');
  @Controller()
  class Math {
    @MessagePattern(`${prefix}.sum`)
    sum(@Payload() numbers: number[]) {
      return numbers.reduce((a, b) => a + b, 0);
    }
  }
  @Module({ controllers: [Math] })
  class AppModule {}
  await kit.microservice(AppModule, { servers: testNatsUrl() });
  const h = natsHeaders();
  h.set(CONTENT_TYPE_HEADER, 'application/msgpack');
  const reply = await kit.nc.request(`${prefix}.sum`, encode([1, 2]), { headers: h, timeout: 5_000 });
  expect(reply.json()).toEqual({ err: expect.objectContaining({ message: expect.stringMatching(/@MessagePattern requests are JSON; this one has Content-Type "application\/msgpack"/) }) });
  const json = await kit.nc.request(`${prefix}.sum`, JSON.stringify([1, 2]), { timeout: 5_000 });
  expect(json.json()).toEqual({ response: 3 });
});
