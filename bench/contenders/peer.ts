import { Controller, Module, type DynamicModule, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import {
  NatsJetStreamClientProxy,
  NatsJetStreamServer,
  NatsJetStreamTransport,
  type NatsJetStreamContext,
} from '@nestjs-plugins/nestjs-nats-jetstream-transport';
import { lastValueFrom } from 'rxjs';
import { Finish, PUBLISH_WINDOW, uniqueName } from '../support.js';

/**
 * The peer column: `@nestjs-plugins/nestjs-nats-jetstream-transport` 2.2.6, the most used NestJS
 * JetStream transport, wired as its README shows (a custom transport strategy with durable push
 * consumers, `@EventPattern` handlers that ack through the context, and its ClientProxy).
 *
 * What it supports, and so what it is measured on: its server iterates each subscription with
 * `for await` and awaits every handler before taking the next message, so handler calls are
 * sequential per subject: there is no concurrency option. It publishes with `js.publish` of
 * the legacy `nats` 2.x client, one `emit()` per message.
 */
export const PEER_CONCURRENCY_NOTE = 'the peer runs handlers one at a time per subscription (no concurrency option)';

/** A Nest microservice with the peer's server strategy and one `@EventPattern` handler. */
export async function peerConsumer(
  url: string,
  subject: string,
  n: number,
  body?: () => Promise<void>,
): Promise<{ app: INestMicroservice; elapsed: Promise<number> }> {
  const finish = new Finish(n);
  @Controller()
  class PeerEvents {
    @EventPattern<string>(subject)
    async handle(@Payload() _payload: unknown, @Ctx() ctx: NatsJetStreamContext) {
      finish.begin();
      if (body) await body();
      // Acked after the handler, as at-least-once needs (the README example acks first).
      ctx.message.ack();
      finish.tick();
    }
  }
  @Module({ controllers: [PeerEvents] })
  class PeerModule {}
  const strategy = new NatsJetStreamServer({
    connectionOptions: { servers: url, name: uniqueName('peer') },
    consumerOptions: { durable: uniqueName('peer'), deliverTo: uniqueName('peer-messages'), manualAck: true, ackPolicy: 'Explicit', deliverPolicy: 'All' },
  });
  const app = await NestFactory.createMicroservice(PeerModule, { strategy, logger: false });
  await app.listen();
  return { app, elapsed: finish.elapsed };
}

/** The peer's ClientProxy, from its module as an application would inject it. */
export async function peerPublisher(url: string): Promise<{
  sequential(subject: string, n: number, payload: unknown): Promise<void>;
  pipelined(subject: string, n: number, payload: unknown): Promise<void>;
  close(): Promise<void>;
}> {
  @Module({ imports: [NatsJetStreamTransport.register({ connectionOptions: { servers: url, name: uniqueName('peer-pub') } }) as DynamicModule] })
  class PeerPublishModule {}
  const app = await NestFactory.createApplicationContext(PeerPublishModule, { logger: false });
  const client = app.get(NatsJetStreamClientProxy);
  await client.connect();
  return {
    async sequential(subject, n, payload) {
      for (let i = 0; i < n; i++) await lastValueFrom(client.emit(subject, payload));
    },
    async pipelined(subject, n, payload) {
      const window: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) {
        window.push(lastValueFrom(client.emit(subject, payload)));
        if (window.length === PUBLISH_WINDOW) await Promise.all(window.splice(0));
      }
      await Promise.all(window);
    },
    async close() {
      await client.close();
      await app.close();
    },
  };
}
