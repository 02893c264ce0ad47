import 'reflect-metadata';
import {
  Controller,
  Injectable,
  Module,
  type ConfigurableModuleOptionsFactory,
  type ModuleMetadata,
  type Type,
} from '@nestjs/common';
import {
  EventContext,
  InvalidOptionsError,
  JETSTREAM_RESOLVED_OPTIONS,
  JetStreamLifecycle,
  JetStreamModule,
  JetStreamPublisher,
  OnEvent,
  type JetStreamModuleOptions,
  type ResolvedModuleOptions,
} from '../../lib/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { sharedServerHooks } from './kit.js';

/**
 * How applications wire the module: forRoot, forRootAsync (factory and class), global scope,
 * the NATS_URL default, and options that must stop the startup.
 */


const hooks = sharedServerHooks();


async function start(metadata: ModuleMetadata): Promise<TestApp> {
  const app = await startApp(metadata);
  hooks.apps.track(app);
  return app;
}

/** The startup error, or a failed expectation (and a closed app) when the startup succeeds. */
async function startupError(metadata: ModuleMetadata): Promise<Error> {
  let app: TestApp;
  try {
    app = await startApp(metadata);
  } catch (err) {
    return err as Error;
  }
  hooks.apps.track(app);
  throw new Error('expected the application startup to fail, but it started');
}

/** A stream definition with subjects of its own, and a concrete subject inside it. */
function freshStream(prefix: string): { name: string; subjects: string[]; subject: string } {
  const name = uniqueName(prefix);
  return { name, subjects: [`${name}.>`], subject: `${name}.event` };
}

/** A handler class recording what it receives on `subject`. */
function recorder(subject: string): { type: Type<unknown>; received: unknown[] } {
  const received: unknown[] = [];
  @Injectable()
  class Recorder {
    @OnEvent(subject)
    handle(payload: unknown): void {
      received.push(payload);
    }
  }
  return { type: Recorder, received };
}

async function streamExists(name: string): Promise<boolean> {
  try {
    await hooks.client.jsm.streams.info(name);
    return true;
  } catch {
    return false;
  }
}

/** Publishes through the app's publisher and waits for its handler to see the payload. */
async function roundTrip(app: TestApp, subject: string, received: unknown[]): Promise<void> {
  const payload = { id: uniqueName('p') };
  const ack = await app.app.get(JetStreamPublisher).publish(subject, payload);
  expect(ack.duplicate).toBe(false);
  await waitFor(() => received.some((p) => (p as { id?: string })?.id === payload.id), {
    timeoutMs: 5_000,
    message: `handler to receive ${payload.id} on ${subject}`,
  });
}

describe('JetStreamModule wiring', () => {
  it('forRoot: connects, creates the streams, runs handlers and serves the publisher', async () => {
    const stream = freshStream('MOD_ROOT');
    const { type, received } = recorder(stream.subject);
    const app = await start({
      imports: [JetStreamModule.forRoot({ servers: testNatsUrl(), streams: [{ name: stream.name, subjects: stream.subjects }] })],
      providers: [type],
    });

    expect(await streamExists(stream.name)).toBe(true);
    const lifecycle = app.app.get(JetStreamLifecycle);
    expect(lifecycle.handlers.map((h) => [h.handlerId, h.subject, h.stream])).toEqual([
      ['Recorder.handle', stream.subject, stream.name],
    ]);
    await roundTrip(app, stream.subject, received);
  });

  it('forRootAsync with useFactory reads its options from an imported config module', async () => {
    const stream = freshStream('MOD_FACTORY');
    const url = testNatsUrl();

    class NatsConfig {
      constructor(readonly url: string) {}
    }
    @Module({ providers: [{ provide: NatsConfig, useValue: new NatsConfig(url) }], exports: [NatsConfig] })
    class NatsConfigModule {}

    const factoryCalls: string[] = [];
    const { type, received } = recorder(stream.subject);
    const app = await start({
      imports: [
        JetStreamModule.forRootAsync({
          imports: [NatsConfigModule],
          inject: [NatsConfig],
          // An async factory, as a real config loader would be.
          useFactory: async (config: NatsConfig): Promise<JetStreamModuleOptions> => {
            factoryCalls.push(config.url);
            return { servers: config.url, streams: [{ name: stream.name, subjects: stream.subjects }] };
          },
        }),
      ],
      providers: [type],
    });

    expect(factoryCalls).toEqual([url]);
    expect(app.app.get<ResolvedModuleOptions>(JETSTREAM_RESOLVED_OPTIONS).servers).toEqual([url]);
    expect(await streamExists(stream.name)).toBe(true);
    await roundTrip(app, stream.subject, received);
  });

  it('forRootAsync with useClass calls createJetStreamOptions() on the class (which can inject)', async () => {
    const stream = freshStream('MOD_CLASS');
    const url = testNatsUrl();

    class NatsConfig {
      constructor(readonly url: string) {}
    }
    @Module({ providers: [{ provide: NatsConfig, useValue: new NatsConfig(url) }], exports: [NatsConfig] })
    class NatsConfigModule {}

    let created = 0;
    @Injectable()
    class JetStreamConfigService implements ConfigurableModuleOptionsFactory<JetStreamModuleOptions, 'createJetStreamOptions'> {
      constructor(private readonly config: NatsConfig) {}
      createJetStreamOptions(): JetStreamModuleOptions {
        created++;
        return { servers: this.config.url, streams: [{ name: stream.name, subjects: stream.subjects }], publishTimeoutMs: 4_321 };
      }
    }

    const { type, received } = recorder(stream.subject);
    const app = await start({
      imports: [JetStreamModule.forRootAsync({ imports: [NatsConfigModule], useClass: JetStreamConfigService })],
      providers: [type],
    });

    expect(created).toBe(1);
    const resolved = app.app.get<ResolvedModuleOptions>(JETSTREAM_RESOLVED_OPTIONS);
    expect(resolved.servers).toEqual([url]);
    expect(resolved.publishTimeoutMs).toBe(4_321);
    expect(await streamExists(stream.name)).toBe(true);
    await roundTrip(app, stream.subject, received);
  });

  it('is global: a feature module that does not import it injects the publisher, and its handlers run', async () => {
    const stream = freshStream('MOD_GLOBAL');
    const received: unknown[] = [];

    @Injectable()
    class OrdersService {
      constructor(readonly publisher: JetStreamPublisher) {}
      place(id: string) {
        return this.publisher.publish(stream.subject, { id });
      }
    }
    @Controller()
    class OrdersListener {
      @OnEvent(stream.subject)
      handle(payload: unknown, ctx: EventContext): void {
        received.push({ payload, handler: ctx.handler });
      }
    }
    // No JetStreamModule in this module's imports.
    @Module({ providers: [OrdersService], controllers: [OrdersListener] })
    class OrdersModule {}

    const app = await start({
      imports: [JetStreamModule.forRoot({ servers: testNatsUrl(), streams: [{ name: stream.name, subjects: stream.subjects }] }), OrdersModule],
    });

    const service = app.app.get(OrdersService);
    expect(service.publisher).toBeInstanceOf(JetStreamPublisher);
    expect(service.publisher).toBe(app.app.get(JetStreamPublisher));
    const ack = await service.place('o-1');
    expect(ack).toEqual({ stream: stream.name, seq: 1, duplicate: false });
    await waitFor(() => received.length === 1, { timeoutMs: 5_000, message: 'OrdersListener to receive o-1' });
    expect(received[0]).toEqual({ payload: { id: 'o-1' }, handler: 'OrdersListener.handle' });
  });

  it('defaults servers to the NATS_URL environment variable', async () => {
    const stream = freshStream('MOD_ENV');
    const { type, received } = recorder(stream.subject);
    const saved = process.env.NATS_URL;
    process.env.NATS_URL = testNatsUrl();
    let app: TestApp;
    try {
      app = await start({
        imports: [JetStreamModule.forRoot({ streams: [{ name: stream.name, subjects: stream.subjects }] })],
        providers: [type],
      });
    } finally {
      if (saved === undefined) delete process.env.NATS_URL;
      else process.env.NATS_URL = saved;
    }
    expect(app.app.get<ResolvedModuleOptions>(JETSTREAM_RESOLVED_OPTIONS).servers).toEqual([testNatsUrl()]);
    expect(await streamExists(stream.name)).toBe(true);
    await roundTrip(app, stream.subject, received);
  });

  describe('invalid options stop the startup with InvalidOptionsError', () => {
    it.each<[string, Record<string, unknown>, RegExp]>([
      ['concurrency 0', { concurrency: 0 }, /concurrency must be an integer >= 1, got 0/],
      ['a durable name with a dot', { durable: 'a.b' }, /durable must match .*got "a\.b"/],
      ['a stream option with a wildcard', { stream: 'ORDERS*' }, /stream must be a stream name, got "ORDERS\*"/],
      ['a negative ackWaitMs', { ackWaitMs: -5 }, /ackWaitMs must be an integer >= 1/],
    ])('handler option: %s names the handler and the field', async (_label, options, message) => {
      const stream = freshStream('MOD_BADOPT');
      class BadHandler {
        @OnEvent(stream.subject, options)
        onThing(_payload: unknown): void {}
      }
      const err = await startupError({
        imports: [JetStreamModule.forRoot({ servers: testNatsUrl(), streams: [{ name: stream.name, subjects: stream.subjects }] })],
        providers: [BadHandler],
      });
      expect(err).toBeInstanceOf(InvalidOptionsError);
      expect(err.message).toContain('BadHandler.onThing');
      expect(err.message).toMatch(message);
    });

    it('an invalid handler subject names the handler', async () => {
      const stream = freshStream('MOD_BADSUBJ');
      class BadSubject {
        @OnEvent(`${stream.name}..x`)
        onThing(_payload: unknown): void {}
      }
      const err = await startupError({
        imports: [JetStreamModule.forRoot({ servers: testNatsUrl(), streams: [{ name: stream.name, subjects: stream.subjects }] })],
        providers: [BadSubject],
      });
      expect(err).toBeInstanceOf(InvalidOptionsError);
      expect(err.message).toContain('BadSubject.onThing');
      expect(err.message).toContain(`${stream.name}..x`);
    });

    it.each<[string, JetStreamModuleOptions, RegExp]>([
      ['empty servers list', { servers: [] }, /servers must be a non-empty/],
      ['empty servers string', { servers: '' }, /servers must be a non-empty/],
      ['stream name with a wildcard', { streams: [{ name: 'ORD*', subjects: ['ord.>'] }] }, /streams\[0\]\.name .*got "ORD\*"/],
      ['stream with an invalid subject', { streams: [{ name: 'ORD', subjects: ['ord.>.x'] }] }, /Stream "ORD": Invalid subject "ord\.>\.x"/],
      ['stream without subjects', { streams: [{ name: 'ORD', subjects: [] }] }, /Stream "ORD": subjects must be a non-empty array/],
      ['publishTimeoutMs 0', { publishTimeoutMs: 0 }, /publishTimeoutMs must be an integer >= 1/],
    ])('module option: %s names the field', async (_label, options, message) => {
      const err = await startupError({
        imports: [JetStreamModule.forRoot({ servers: testNatsUrl(), ...options })],
      });
      expect(err).toBeInstanceOf(InvalidOptionsError);
      expect(err.message).toMatch(message);
    });

    it('an invalid module-wide handler default names the handler it would apply to', async () => {
      const stream = freshStream('MOD_BADDEF');
      const { type } = recorder(stream.subject);
      const err = await startupError({
        imports: [
          JetStreamModule.forRoot({
            servers: testNatsUrl(),
            streams: [{ name: stream.name, subjects: stream.subjects }],
            defaults: { concurrency: 0 },
          }),
        ],
        providers: [type],
      });
      expect(err).toBeInstanceOf(InvalidOptionsError);
      expect(err.message).toContain('Recorder.handle');
      expect(err.message).toMatch(/concurrency must be an integer >= 1, got 0/);
    });

    it('a module-wide default durable, which cannot work, is refused rather than silently dropped', async () => {
      // Regression (fixed): `defaults` is typed Partial<OnEventOptions>, so `durable` is
      // accepted, but resolveHandlerOptions (lib/discovery/resolve-handler-options.ts) reads the
      // durable from the handler's own options only and drops the default without a word: every
      // handler silently gets an ephemeral consumer (deliver policy 'new', no dead-letter stream)
      // instead of the durable the operator configured.
      const stream = freshStream('MOD_DEFDUR');
      const { type } = recorder(stream.subject);
      const err = await startupError({
        imports: [
          JetStreamModule.forRoot({
            servers: testNatsUrl(),
            streams: [{ name: stream.name, subjects: stream.subjects }],
            // Plain JavaScript callers (or a cast) can still pass it; the type forbids it.
            defaults: { durable: 'everyone' } as never,
          }),
        ],
        providers: [type],
      });
      expect(err).toBeInstanceOf(InvalidOptionsError);
      expect(err.message).toContain('durable');
    });

    it('forRootAsync: options from the factory are validated the same way', async () => {
      const err = await startupError({
        imports: [JetStreamModule.forRootAsync({ useFactory: () => ({ servers: [] as string[] }) })],
      });
      expect(err).toBeInstanceOf(InvalidOptionsError);
      expect(err.message).toMatch(/servers must be a non-empty/);
    });
  });
});
