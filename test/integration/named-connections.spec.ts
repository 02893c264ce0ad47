import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import {
  DeadLetterService,
  EventContext,
  getConnectionToken,
  getDeadLetterServiceToken,
  getPublisherToken,
  HandlerConfigurationError,
  InjectPublisher,
  InvalidOptionsError,
  JetStreamConnection,
  JetStreamModule,
  JetStreamPublisher,
  OnEvent,
} from '../../lib/index.js';
import { recordHandled } from '../../lib/testing/index.js';
import { NatsServerProcess, testNatsUrl, uniqueName } from '../harness/index.js';
import { CapturingLogger, startApp, type TestApp } from '../support/test-app.js';
import { openClient } from './kit.js';

// Two servers: the shared one for the default connection and one of this spec's own for the
// named connection, so every assertion can tell which server a message really went through.
describe('named connections', () => {
  let second: NatsServerProcess;
  const apps: TestApp[] = [];

  beforeAll(async () => {
    second = await NatsServerProcess.start();
  });

  afterEach(async () => {
    await Promise.allSettled(apps.splice(0).map((a) => a.close()));
  });

  afterAll(async () => {
    await second.stop();
  });

  async function start(...args: Parameters<typeof startApp>): Promise<TestApp> {
    const app = await startApp(...args);
    apps.push(app);
    return app;
  }

  it('runs each handler on its own connection and injects a publisher per connection', async () => {
    const ordersStream = uniqueName('ORD');
    const metricsStream = uniqueName('MET');
    const seen: Array<{ handler: string; payload: unknown; stream: string }> = [];

    @Injectable()
    class Handlers {
      constructor(
        readonly orders: JetStreamPublisher,
        @InjectPublisher('analytics') readonly metrics: JetStreamPublisher,
      ) {}

      @OnEvent(`${ordersStream}.created`, { durable: 'orders' })
      onOrder(payload: unknown, ctx: EventContext): void {
        seen.push({ handler: 'orders', payload, stream: ctx.stream });
      }

      @OnEvent(`${metricsStream}.tick`, { durable: 'metrics', connection: 'analytics' })
      onTick(payload: unknown, ctx: EventContext): void {
        seen.push({ handler: 'metrics', payload, stream: ctx.stream });
      }
    }

    const app = await start({
      imports: [
        JetStreamModule.forRoot({ servers: testNatsUrl(), streams: [{ name: ordersStream, subjects: [`${ordersStream}.>`] }] }),
        JetStreamModule.forRoot({
          name: 'analytics',
          servers: second.url,
          streams: [{ name: metricsStream, subjects: [`${metricsStream}.>`] }],
        }),
      ],
      providers: [Handlers],
    });
    const handlers = app.app.get(Handlers);
    expect(handlers.orders).not.toBe(handlers.metrics);
    expect(getPublisherToken()).toBe(JetStreamPublisher);
    expect(app.app.get(getPublisherToken('analytics'))).toBe(handlers.metrics);

    const analytics = recordHandled(app.app, { connection: 'analytics' });
    const defaults = recordHandled(app.app);
    await handlers.orders.publish(`${ordersStream}.created`, { id: 1 });
    await handlers.metrics.publish(`${metricsStream}.tick`, { n: 7 });
    await Promise.all([defaults.waitFor({ handler: 'Handlers.onOrder' }), analytics.waitFor({ handler: 'Handlers.onTick' })]);
    expect(defaults.matching().map((e) => e.handlerId)).toEqual(['Handlers.onOrder']);
    expect(analytics.matching().map((e) => e.handlerId)).toEqual(['Handlers.onTick']);
    expect(seen).toEqual(
      expect.arrayContaining([
        { handler: 'orders', payload: { id: 1 }, stream: ordersStream },
        { handler: 'metrics', payload: { n: 7 }, stream: metricsStream },
      ]),
    );

    // Each stream and durable exists only on its own connection's server.
    const shared = await openClient(testNatsUrl());
    const own = await openClient(second.url);
    try {
      await expect(shared.jsm.consumers.info(ordersStream, 'orders')).resolves.toBeDefined();
      await expect(own.jsm.consumers.info(metricsStream, 'metrics')).resolves.toBeDefined();
      await expect(shared.jsm.streams.info(metricsStream)).rejects.toThrow(/not found/i);
      await expect(own.jsm.streams.info(ordersStream)).rejects.toThrow(/not found/i);
      await shared.jsm.streams.delete(ordersStream);
    } finally {
      await shared.close();
      await own.close();
    }
  });

  it('exports connection, publisher and dead-letter service of a named connection only under its tokens', async () => {
    const app = await start({
      imports: [JetStreamModule.forRoot({ name: 'audit', servers: second.url })],
    });
    const connection = app.app.get<JetStreamConnection>(getConnectionToken('audit'));
    expect(connection).toBeInstanceOf(JetStreamConnection);
    expect(app.app.get(getDeadLetterServiceToken('audit'))).toBeInstanceOf(DeadLetterService);
    await app.close();
    apps.splice(apps.indexOf(app), 1);
    expect(connection.nc.isClosed()).toBe(true);
  });

  it('forRootAsync takes the name beside the factory', async () => {
    const stream = uniqueName('ASYNC');
    @Injectable()
    class Config {
      readonly url = second.url;
    }
    @Module({ providers: [Config], exports: [Config] })
    class ConfigModule {}

    @Injectable()
    class Sender {
      constructor(@InjectPublisher('late') readonly publisher: JetStreamPublisher) {}
    }

    const app = await start({
      imports: [
        JetStreamModule.forRootAsync({
          name: 'late',
          imports: [ConfigModule],
          inject: [Config],
          useFactory: (config: Config) => ({ servers: config.url, streams: [{ name: stream, subjects: [`${stream}.>`] }] }),
        }),
      ],
      providers: [Sender],
    });
    const ack = await app.app.get(Sender).publisher.publish(`${stream}.x`, { ok: true });
    expect(ack.stream).toBe(stream);
  });

  it('fails startup when a handler names a connection nobody configured', async () => {
    class Orphan {
      @OnEvent('nowhere.x', { connection: 'missing' })
      handle(): void {}
    }
    const error = await start({ imports: [JetStreamModule.forRoot({ servers: second.url })], providers: [Orphan] }, new CapturingLogger()).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(HandlerConfigurationError);
    expect((error as Error).message).toMatch(/Orphan\.handle names connection "missing".*configured: default/);
  });

  it('fails startup when a handler has no connection but only named connections exist', async () => {
    class Unbound {
      @OnEvent('nowhere.y')
      handle(): void {}
    }
    const error = await start(
      { imports: [JetStreamModule.forRoot({ name: 'only', servers: second.url })], providers: [Unbound] },
      new CapturingLogger(),
    ).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(HandlerConfigurationError);
    expect((error as Error).message).toMatch(/Unbound\.handle uses the default connection.*\(only\)/);
  });

  it('rejects invalid connection names where they are written', async () => {
    expect(() => JetStreamModule.forRoot({ name: 'has space', servers: second.url })).toThrow(InvalidOptionsError);
    expect(() => JetStreamModule.forRoot({ name: 'a.b' })).toThrow(/connection name must match/);
    class BadName {
      @OnEvent('nowhere.z', { connection: 'a.b' })
      handle(): void {}
    }
    const error = await start({ imports: [JetStreamModule.forRoot({ servers: second.url })], providers: [BadName] }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect((error as Error).message).toMatch(/names connection "a\.b"/);
  });

  it('rejects defaults.connection', async () => {
    const error = await start({
      imports: [JetStreamModule.forRoot({ servers: second.url, defaults: { connection: 'x' } as never })],
    }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as Error).message).toMatch(/defaults\.connection is not allowed/);
  });
});
