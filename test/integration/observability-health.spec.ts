import 'reflect-metadata';
import type { Provider } from '@nestjs/common';
import { TerminusModule, type HealthIndicatorResult } from '@nestjs/terminus';
import { JetStreamHealthIndicator, type JetStreamHealthOptions } from '../../lib/health/index.js';
import { JetStreamLifecycle, JetStreamModule, type JetStreamModuleOptions } from '../../lib/index.js';
import { deferred, NatsServerProcess, testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { createStream, deleteCreatedStreams, handlerClass, openClient, type RawClient } from './kit.js';

/** The terminus indicator against real servers: connection state, running consumers, lag. */

let client: RawClient;
const started: TestApp[] = [];
const servers: NatsServerProcess[] = [];

beforeAll(async () => {
  client = await openClient(testNatsUrl());
});
afterAll(async () => {
  await deleteCreatedStreams(client.jsm);
  await client.close();
});
afterEach(async () => {
  await Promise.allSettled(started.splice(0).map((a) => a.close()));
  await Promise.allSettled(servers.splice(0).map((s) => s.stop()));
});

async function startHealthApp(options: JetStreamModuleOptions, handlers: Provider[]): Promise<{ app: TestApp; health: JetStreamHealthIndicator }> {
  const app = await startApp({ imports: [JetStreamModule.forRoot(options), TerminusModule], providers: [JetStreamHealthIndicator, ...handlers] });
  started.push(app);
  return { app, health: app.app.get(JetStreamHealthIndicator) };
}

type Detail = {
  status: string;
  connection?: string;
  consumers?: { expected: number; running: number };
  lag?: Record<string, { pending?: number; ackPending?: number; error?: string }>;
  message?: string;
};

async function check(health: JetStreamHealthIndicator, options?: JetStreamHealthOptions): Promise<Detail> {
  const result: HealthIndicatorResult<'nats'> = await health.isHealthy('nats', options);
  return result.nats as Detail;
}

describe('JetStreamHealthIndicator', () => {
  it('is up while connected, down while the server is gone, and up again once it is back', async () => {
    const server = await NatsServerProcess.start();
    servers.push(server);
    const stream = uniqueName('HLT');
    const Handler = handlerClass('HealthHandler', `${stream}.x`, { durable: 'health' }, () => undefined);
    const { health } = await startHealthApp({ servers: server.url, streams: [{ name: stream, subjects: [`${stream}.>`] }] }, [Handler]);

    expect(await check(health)).toEqual({ status: 'up', connection: 'connected', consumers: { expected: 1, running: 1 } });

    await server.kill();
    let last: Detail | undefined;
    await waitFor(async () => (last = await check(health)).status === 'down', {
      timeoutMs: 15_000,
      message: () => `down after the server died, last ${JSON.stringify(last)}`,
    });
    expect(last).toMatchObject({ status: 'down', connection: 'reconnecting', message: 'NATS connection is reconnecting' });

    await server.restart();
    await waitFor(async () => (last = await check(health)).status === 'up', {
      timeoutMs: 20_000,
      message: () => `up after the restart, last ${JSON.stringify(last)}`,
    });
    expect(last).toEqual({ status: 'up', connection: 'connected', consumers: { expected: 1, running: 1 } });
  });

  it('is down while a consumer lags more than maxLag, with the numbers, and up once it caught up', async () => {
    const stream = uniqueName('HLAG');
    await createStream(client.jsm, stream, [`${stream}.>`]);
    for (let i = 0; i < 10; i++) await client.js.publish(`${stream}.work`, JSON.stringify({ i }));
    const release = deferred();
    const Slow = handlerClass('LaggingHandler', `${stream}.work`, { durable: 'slow', concurrency: 1, prefetch: 1 }, () => release.promise);
    const { health } = await startHealthApp({ servers: testNatsUrl() }, [Slow]);
    const key = `${stream}/slow`;

    // Without a threshold, lag is not looked at.
    expect((await check(health)).status).toBe('up');

    let last: Detail | undefined;
    // The client may pull one message ahead of the held one: wait until all 10 are accounted for.
    const accounted = (d: Detail) => (d.lag?.[key]?.ackPending ?? 0) >= 1 && (d.lag?.[key]?.pending ?? 0) + (d.lag?.[key]?.ackPending ?? 0) === 10;
    await waitFor(async () => accounted((last = await check(health, { maxLag: 3 }))), {
      timeoutMs: 10_000,
      message: () => `the handler holding its message, last ${JSON.stringify(last)}`,
    });
    expect(last?.status).toBe('down');
    expect(last?.lag?.[key]?.pending).toBeGreaterThan(3);
    expect(last?.message).toContain(`consumer lag over 3: ${key} ${last?.lag?.[key]?.pending} pending`);
    expect((await check(health, { maxLag: 100 })).status).toBe('up');

    release.resolve();
    await waitFor(async () => (last = await check(health, { maxLag: 3 })).status === 'up', {
      timeoutMs: 10_000,
      message: () => `up once caught up, last ${JSON.stringify(last)}`,
    });
    expect(last?.lag?.[key]?.pending).toBeLessThanOrEqual(3);
  });

  it('is down when consumers stopped, when the connection is closed, and for an unknown connection name', async () => {
    const stream = uniqueName('HSTOP');
    await createStream(client.jsm, stream, [`${stream}.>`]);
    const Handler = handlerClass('StoppingHandler', `${stream}.x`, { durable: 'stopping' }, () => undefined);
    const { app, health } = await startHealthApp({ servers: testNatsUrl() }, [Handler]);

    expect(await check(health, { connection: 'analytics' })).toEqual({
      status: 'down',
      message: 'no JetStream connection named "analytics" (is JetStreamModule.forRoot imported?)',
    });

    // What shutdown does first: consumers stop while the connection is still open.
    await app.app.get(JetStreamLifecycle).onModuleDestroy();
    expect(await check(health)).toEqual({
      status: 'down',
      connection: 'connected',
      consumers: { expected: 1, running: 0 },
      message: 'consumers not running: StoppingHandler.handle',
    });

    await app.close();
    await waitFor(async () => (await check(health)).connection === 'closed', { timeoutMs: 5_000, message: 'closed' });
    expect((await check(health)).status).toBe('down');
  });
});
