import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { EventContext, JetStreamModule, JetStreamPublisher, OnEvent } from '../../lib/index.js';
import { deferred, testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { startApp, type TestApp } from '../support/test-app.js';

let nc: NatsConnection;
let jsm: JetStreamManager;
let app: TestApp | undefined;

beforeAll(async () => {
  nc = await connect({ servers: testNatsUrl() });
  jsm = await jetstreamManager(nc);
});
afterAll(() => nc.close());
afterEach(async () => {
  await app?.close();
  app = undefined;
});

describe('at-most-once when the ack cannot be confirmed', () => {
  it('does not run the handler', async () => {
    const stream = uniqueName('AMOC');
    const subject = `${stream}.x`;
    await jsm.streams.add({ name: stream, subjects: [subject] });
    const handled: number[] = [];
    const firstRunning = deferred();
    const releaseFirst = deferred();
    @Injectable()
    class Handler {
      @OnEvent(subject, { durable: 'amoc', delivery: 'at-most-once', dlq: false })
      async handle(payload: { n: number }, _ctx: EventContext) {
        handled.push(payload.n);
        if (payload.n === 1) {
          firstRunning.resolve();
          await releaseFirst.promise;
        }
      }
    }
    // A short confirmation timeout: the ack of message 2 gets no reply once its consumer is gone.
    app = await startApp({ imports: [JetStreamModule.forRoot({ servers: testNatsUrl(), publishTimeoutMs: 300 })], providers: [Handler] });
    const publisher = app.app.get(JetStreamPublisher);
    await publisher.publish(subject, { n: 1 });
    await publisher.publish(subject, { n: 2 });
    await firstRunning.promise;
    // Message 2 is already buffered in the client (prefetch); remove the consumer under it.
    await waitFor(async () => (await jsm.consumers.info(stream, 'amoc')).delivered.stream_seq === 2, {
      timeoutMs: 5_000,
      message: 'message 2 delivered to the client',
    });
    await jsm.consumers.delete(stream, 'amoc');
    releaseFirst.resolve();
    await waitFor(() => app!.logger.find('ack of seq 2 not confirmed').length > 0, {
      timeoutMs: 10_000,
      message: 'the unconfirmed ack of message 2 to be reported',
    });
    expect(handled).toEqual([1]);
  });
});
