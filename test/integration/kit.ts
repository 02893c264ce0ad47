import 'reflect-metadata';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  jetstream,
  jetstreamManager,
  JetStreamApiError,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import type { Provider, Type } from '@nestjs/common';
import { IsInt, IsString } from 'class-validator';
import {
  DeadLetterService,
  EventContext,
  JetStreamConnection,
  JetStreamLifecycle,
  JetStreamModule,
  JetStreamPublisher,
  OnEvent,
  type DeadLetter,
  type JetStreamModuleOptions,
  type OnEventOptions,
} from '../../lib/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { CapturingLogger, startApp, type TestApp } from '../support/test-app.js';

/**
 * Shared plumbing for the consumer/lifecycle/scaling integration specs: an independent client
 * connection (the "operator's view" of the server), handler classes built per test, and apps
 * that are always closed.
 */

export interface RawClient {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  close(): Promise<void>;
}

/** A connection of the test's own, independent of any app under test. */
export async function openClient(url: string): Promise<RawClient> {
  const nc = await connect({ servers: url, name: 'integration-test-client' });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  return {
    nc,
    js,
    jsm,
    close: async () => {
      if (!nc.isClosed()) await nc.close();
    },
  };
}

const createdStreams = new Set<string>();

/** Creates a stream and remembers it, so the spec can delete what it made (deleteCreatedStreams). */
export async function createStream(
  jsm: JetStreamManager,
  name: string,
  subjects: string[],
  extra: Partial<StreamConfig> = {},
): Promise<void> {
  await jsm.streams.add({ name, subjects, ...extra });
  createdStreams.add(name);
}

/** Deletes every stream createStream made in this test file: the shared server stays lean. */
export async function deleteCreatedStreams(jsm: JetStreamManager): Promise<void> {
  const names = [...createdStreams];
  createdStreams.clear();
  await Promise.allSettled(names.map((name) => jsm.streams.delete(name)));
}

/** Consumer info, or undefined when the server says the consumer does not exist. */
export async function consumerInfoOrUndefined(
  jsm: JetStreamManager,
  stream: string,
  name: string,
): Promise<ConsumerInfo | undefined> {
  try {
    return await jsm.consumers.info(stream, name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === 10014) return undefined;
    throw err;
  }
}

export interface Delivery<T = unknown> {
  readonly payload: T;
  readonly seq: number;
  readonly subject: string;
  readonly deliveryCount: number;
  readonly consumer: string;
}

export type HandlerBody = (payload: unknown, ctx: EventContext) => unknown;

/**
 * A fresh handler class per call: `@OnEvent(subject, options)` on `handle`, delegating to
 * `body`. A class per test keeps decorator metadata from leaking between tests.
 */
export function handlerClass(name: string, subject: string, options: OnEventOptions, body: HandlerBody): Type<unknown> {
  class Handler {
    @OnEvent(subject, options)
    async handle(payload: unknown, ctx: EventContext): Promise<void> {
      await body(payload, ctx);
    }
  }
  Object.defineProperty(Handler, 'name', { value: name });
  return Handler;
}

export function toDelivery(payload: unknown, ctx: EventContext): Delivery {
  return {
    payload,
    seq: ctx.sequence,
    subject: ctx.subject,
    deliveryCount: ctx.deliveryCount,
    consumer: ctx.consumer,
  };
}

/** Tracks every app a test starts so afterEach can close them all, whatever failed. */
export class AppTracker {
  private readonly apps: TestApp[] = [];

  async start(
    options: JetStreamModuleOptions,
    handlers: Provider[] = [],
    logger = new CapturingLogger(),
  ): Promise<JetStreamTestApp> {
    const app = await startApp({ imports: [JetStreamModule.forRoot(options)], providers: handlers }, logger);
    this.apps.push(app);
    return new JetStreamTestApp(app);
  }

  /** An app started some other way, closed with the rest after the test. */
  track<T extends TestApp>(app: T): T {
    this.apps.push(app);
    return app;
  }

  async closeAll(): Promise<void> {
    const apps = this.apps.splice(0);
    await Promise.allSettled(apps.map((a) => a.close()));
  }
}

export class JetStreamTestApp {
  constructor(readonly inner: TestApp) {}

  get logger(): CapturingLogger {
    return this.inner.logger;
  }

  get publisher(): JetStreamPublisher {
    return this.inner.app.get(JetStreamPublisher);
  }

  get connection(): JetStreamConnection {
    return this.inner.app.get(JetStreamConnection);
  }

  get lifecycle(): JetStreamLifecycle {
    return this.inner.app.get(JetStreamLifecycle);
  }

  /** Consumer name of the one running handler (the generated name for ephemeral consumers). */
  consumerName(): string {
    const handlers = this.lifecycle.handlers;
    if (handlers.length !== 1) throw new Error(`expected exactly one running handler, got ${handlers.length}`);
    return handlers[0].consumer;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Resolves after the given promise settles, with how long that took. */
export async function timed<T>(p: Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await p;
  return { value, ms: performance.now() - start };
}

/** Nanoseconds since the epoch of a server timestamp (`2025-01-01T00:00:00.123456789Z`). */
export function timestampNanos(iso: string): bigint {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(iso);
  if (!m) throw new Error(`unexpected server timestamp ${iso}`);
  const seconds = BigInt(Date.parse(`${m[1]}${m[3]}`) / 1000);
  const fraction = BigInt((m[2] ?? '').padEnd(9, '0').slice(0, 9));
  return seconds * 1_000_000_000n + fraction;
}

/** A `$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED` advisory: the server got a nak for this message. */
export interface NakAdvisory {
  readonly stream: string;
  readonly consumer: string;
  readonly stream_seq: number;
  readonly deliveries: number;
}

/**
 * Records the server's nak advisories for a consumer, so a test can see a message being handed
 * back as it happens (a nak'ed message stays in num_ack_pending until it is redelivered).
 */
export async function watchNaks(
  nc: NatsConnection,
  stream: string,
  consumer: string,
): Promise<{ readonly naks: NakAdvisory[]; seqs(): number[]; stop(): void }> {
  const naks: NakAdvisory[] = [];
  const sub = nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.${stream}.${consumer}`, {
    callback: (err, msg) => {
      if (!err) naks.push(msg.json<NakAdvisory>());
    },
  });
  // The subscription is registered on the server before anything the test does next.
  await nc.flush();
  return {
    naks,
    seqs: () => naks.map((n) => n.stream_seq),
    stop: () => sub.unsubscribe(),
  };
}

/**
 * The hooks of a spec on the shared server: a raw client of its own (the streams it created are
 * deleted after the spec) and every app closed after each test, whatever failed. `client` is
 * only there once beforeAll has run.
 */
export function sharedServerHooks(): { readonly apps: AppTracker; readonly client: RawClient } {
  const apps = new AppTracker();
  let client: RawClient | undefined;
  beforeAll(async () => {
    client = await openClient(testNatsUrl());
  });
  afterEach(async () => {
    await apps.closeAll();
  });
  afterAll(async () => {
    if (client) await deleteCreatedStreams(client.jsm);
    await client?.close();
  });
  return {
    apps,
    get client(): RawClient {
      if (!client) throw new Error('sharedServerHooks: client used before beforeAll ran');
      return client;
    },
  };
}

/**
 * A stream of its own for one test, and a dead-letter stream per test: listings stay independent
 * on the shared server. The dead-letter subject stays outside `dlq.>`, which the default DLQ
 * stream of other tests claims.
 */
export async function freshStream(
  jsm: JetStreamManager,
  prefix: string,
): Promise<{ stream: string; subject: (s: string) => string; dlqStream: string; dlq: { stream: string; subject: string } }> {
  const stream = uniqueName(prefix);
  await createStream(jsm, stream, [`${stream}.>`]);
  const dlqStream = uniqueName('DL');
  return { stream, subject: (s) => `${stream}.${s}`, dlqStream, dlq: { stream: dlqStream, subject: `${dlqStream}.letters` } };
}

/** The dead letters of a stream once there are `count` of them, read through the app's service. */
export async function waitForDeadLetters(app: JetStreamTestApp, dlqStream: string, count: number, originalStream?: string): Promise<DeadLetter[]> {
  const service = app.inner.app.get(DeadLetterService);
  let letters = await service.list({ stream: dlqStream, originalStream });
  await waitFor(async () => (letters = await service.list({ stream: dlqStream, originalStream })).length >= count, {
    timeoutMs: 15_000,
    message: `${count} dead letter(s) in ${dlqStream}`,
  });
  return letters;
}

/** A class-validated payload the delivery specs share. */
export class Order {
  @IsString() id!: string;
  @IsInt() qty!: number;
}
