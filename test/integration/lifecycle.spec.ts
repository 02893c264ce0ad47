import 'reflect-metadata';
import { StorageType } from '@nats-io/jetstream';
import { ConnectionFailedError } from '../../lib/index.js';
import { deferred, freeLoopbackPort, NatsServerProcess, testNatsUrl, uniqueName, withDeadline, waitFor } from '../harness/index.js';
import { CapturingLogger } from '../support/test-app.js';
import {
  AppTracker,
  createStream,
  deleteCreatedStreams,
  handlerClass,
  openClient,
  timed,
  toDelivery,
  type Delivery,
  type JetStreamTestApp,
  type RawClient,
  watchNaks,
} from './kit.js';

const TEST_TIMEOUT_MS = 60_000;

/**
 * Startup and shutdown against a real nats-server: what happens to messages in flight and in
 * the client's buffer when an app stops, and how connection trouble is reported.
 */
describe('lifecycle (real nats-server)', () => {
  const apps = new AppTracker();
  /** Run after each test, after the apps are closed (e.g. releasing handlers that never finish). */
  const cleanups: Array<() => unknown> = [];
  let client: RawClient;

  beforeAll(async () => {
    client = await openClient(testNatsUrl());
  });

  afterEach(async () => {
    await apps.closeAll();
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  afterAll(async () => {
    if (client) await deleteCreatedStreams(client.jsm);
    await client?.close();
  });

  async function freshStream(prefix = 'LIFE'): Promise<{ stream: string; subject: string }> {
    const stream = uniqueName(prefix);
    await createStream(client.jsm, stream, [`${stream}.>`]);
    return { stream, subject: `${stream}.evt` };
  }

  async function publishRaw(subject: string, count: number): Promise<void> {
    for (let n = 1; n <= count; n++) await client.js.publish(subject, JSON.stringify({ n }));
  }

  /** Consumer state as seen from a brand-new connection (nothing cached from the app's). */
  async function freshConsumerInfo(stream: string, durable: string) {
    const fresh = await openClient(testNatsUrl());
    try {
      return await fresh.jsm.consumers.info(stream, durable);
    } finally {
      await fresh.close();
    }
  }

  describe('graceful shutdown', () => {
    it('lets a slow in-flight handler finish and ack, and leaves the rest to the next instance', async () => {
      const { stream, subject } = await freshStream();
      const durable = uniqueName('graceful');
      await publishRaw(subject, 5);

      const started = deferred<void>();
      const release = deferred<void>();
      const handledByFirst: number[] = [];
      const First = handlerClass('SlowFirst', subject, { durable, concurrency: 1 }, async (_payload, ctx) => {
        if (ctx.sequence === 1) {
          started.resolve();
          await release.promise;
        }
        handledByFirst.push(ctx.sequence);
      });
      cleanups.push(() => release.resolve());
      const app1 = await apps.start({ servers: testNatsUrl(), shutdownTimeoutMs: 10_000 }, [First]);
      await withDeadline(started.promise, 10_000, 'the first message never reached the handler');
      // All five are in the app's client (asked over its own connection) before shutdown starts.
      await waitFor(async () => (await app1.connection.jsm.consumers.info(stream, durable)).num_ack_pending === 5, {
        timeoutMs: 10_000,
        message: 'the app never received all five messages',
      });

      const naks = await watchNaks(client.nc, stream, durable);
      cleanups.push(() => naks.stop());
      let closeResolved = false;
      const closing = app1.close().then(() => {
        closeResolved = true;
      });
      // Shutdown is under way: the server gets naks for the four buffered messages, while the
      // in-flight one is kept and close() keeps waiting for it.
      await waitFor(() => naks.naks.length >= 4, {
        timeoutMs: 10_000,
        message: () => `buffered messages were not handed back while the handler ran; naks for ${JSON.stringify(naks.seqs())}`,
      });
      expect(naks.seqs().sort((a, b) => a - b)).toEqual([2, 3, 4, 5]);
      expect(closeResolved).toBe(false);
      expect(handledByFirst).toEqual([]);

      release.resolve();
      await withDeadline(closing, 10_000, 'close() did not resolve after the handler finished');
      expect(handledByFirst).toEqual([1]);
      // The finished message was not handed back as well.
      expect(naks.seqs()).not.toContain(1);

      // The finished message is acked, as a new connection sees: the ack floor covers seq 1, and
      // what still awaits an ack is exactly the four handed back (the server counts a nak'ed
      // message as ack-pending until it is redelivered).
      await waitFor(async () => (await freshConsumerInfo(stream, durable)).ack_floor.stream_seq >= 1, {
        timeoutMs: 10_000,
        message: 'the message finished during shutdown was never acked',
      });
      const afterClose = await freshConsumerInfo(stream, durable);
      expect(afterClose.ack_floor.stream_seq).toBe(1);
      expect(afterClose.num_ack_pending).toBe(4);

      // Nothing lost: the next instance on the same durable gets exactly the other four, promptly.
      const second: Delivery[] = [];
      await apps.start({ servers: testNatsUrl() }, [
        handlerClass('SlowSecond', subject, { durable, concurrency: 1 }, (payload, ctx) => {
          second.push(toDelivery(payload, ctx));
        }),
      ]);
      await waitFor(() => second.length >= 4, {
        timeoutMs: 10_000,
        message: () => `second instance got ${JSON.stringify(second.map((d) => d.seq))}`,
      });
      await waitFor(async () => (await client.jsm.consumers.info(stream, durable)).num_ack_pending === 0, {
        timeoutMs: 10_000,
        message: 'second instance did not ack',
      });
      expect(second.map((d) => d.seq).sort((a, b) => a - b)).toEqual([2, 3, 4, 5]);
      const final = await client.jsm.consumers.info(stream, durable);
      expect(final.ack_floor.stream_seq).toBe(5);
      expect(final.num_ack_pending).toBe(0);
      expect(final.num_pending).toBe(0);
    }, TEST_TIMEOUT_MS);

    it('gives up on a handler that never finishes after shutdownTimeoutMs and hands its message back', async () => {
      const { stream, subject } = await freshStream();
      const durable = uniqueName('hung');
      await publishRaw(subject, 1);

      const started = deferred<void>();
      const never = deferred<void>();
      cleanups.push(() => never.resolve());
      let completedByFirst = 0;
      const Hung = handlerClass('HungHandler', subject, { durable }, async () => {
        started.resolve();
        await never.promise;
        completedByFirst++;
      });
      const app1 = await apps.start({ servers: testNatsUrl(), shutdownTimeoutMs: 500 }, [Hung]);
      await withDeadline(started.promise, 10_000, 'the message never reached the handler');
      const naks = await watchNaks(client.nc, stream, durable);
      cleanups.push(() => naks.stop());

      const { ms } = await timed(withDeadline(app1.close(), 10_000, 'close() did not resolve'));
      expect(ms).toBeGreaterThanOrEqual(450);
      // Bounded by the shutdown timeout, not by the hung call; generous for a loaded machine.
      expect(ms).toBeLessThan(500 + 8_000);
      expect(app1.logger.find('still running after 500 ms', 'warn')).toHaveLength(1);
      expect(completedByFirst).toBe(0);

      // Not acked: the server still has nothing below seq 1 acknowledged...
      const info = await freshConsumerInfo(stream, durable);
      expect(info.ack_floor.stream_seq).toBe(0);

      // ...and it is nak'ed, not left to the 30 s ack wait: a new instance gets it at once.
      await waitFor(() => naks.seqs().includes(1), { timeoutMs: 10_000, message: 'the server never got a nak for the abandoned message' });
      const second: Delivery[] = [];
      const startedAt = performance.now();
      await apps.start({ servers: testNatsUrl() }, [
        handlerClass('HungSecond', subject, { durable }, (payload, ctx) => {
          second.push(toDelivery(payload, ctx));
        }),
      ]);
      await waitFor(() => second.length >= 1, { timeoutMs: 10_000, message: 'the abandoned message was not redelivered within 10 s' });
      expect(performance.now() - startedAt).toBeLessThan(10_000);
      expect(second[0].seq).toBe(1);
      expect(second[0].deliveryCount).toBe(2);
      await waitFor(async () => (await client.jsm.consumers.info(stream, durable)).ack_floor.stream_seq === 1, {
        timeoutMs: 10_000,
        message: 'second instance did not ack',
      });
      expect(second).toHaveLength(1);
    }, TEST_TIMEOUT_MS);

    it('hands buffered-but-not-started messages back at shutdown; none is acked without being handled', async () => {
      const { stream, subject } = await freshStream();
      const durable = uniqueName('buffered');
      const total = 20;
      await publishRaw(subject, total);

      const startedByFirst: number[] = [];
      const completedByFirst: number[] = [];
      const block = deferred<void>();
      cleanups.push(() => block.resolve());
      const First = handlerClass('BufferedFirst', subject, { durable, concurrency: 1 }, async (_payload, ctx) => {
        startedByFirst.push(ctx.sequence);
        await block.promise;
        completedByFirst.push(ctx.sequence);
      });
      const app1 = await apps.start({ servers: testNatsUrl(), shutdownTimeoutMs: 300 }, [First]);
      await waitFor(() => startedByFirst.length >= 1, { timeoutMs: 10_000, message: 'handler never started' });
      await waitFor(async () => (await app1.connection.jsm.consumers.info(stream, durable)).num_ack_pending === total, {
        timeoutMs: 10_000,
        message: 'the app never buffered all the messages',
      });

      const naks = await watchNaks(client.nc, stream, durable);
      cleanups.push(() => naks.stop());
      await withDeadline(app1.close(), 10_000, 'close() did not resolve');
      expect(startedByFirst).toEqual([1]);
      expect(completedByFirst).toEqual([]);
      // Every one of them handed back with a nak: 2..20 at once, 1 when the shutdown timeout hit.
      await waitFor(() => new Set(naks.seqs()).size >= total, {
        timeoutMs: 10_000,
        message: () => `naks only for ${JSON.stringify(naks.seqs())}`,
      });
      expect([...naks.seqs()].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect((await freshConsumerInfo(stream, durable)).ack_floor.stream_seq).toBe(0);

      const handledBySecond: number[] = [];
      await apps.start({ servers: testNatsUrl() }, [
        handlerClass('BufferedSecond', subject, { durable, concurrency: 1 }, (_payload, ctx) => {
          handledBySecond.push(ctx.sequence);
        }),
      ]);
      // Promptly (handed back with a nak), not after the 30 s ack wait.
      await waitFor(() => handledBySecond.length >= total, {
        timeoutMs: 10_000,
        message: () => `second instance handled ${handledBySecond.length}/${total}: ${JSON.stringify(handledBySecond)}`,
      });
      await waitFor(async () => (await client.jsm.consumers.info(stream, durable)).num_ack_pending === 0, {
        timeoutMs: 10_000,
        message: 'second instance did not ack everything',
      });

      expect(handledBySecond).toHaveLength(total);
      expect([...handledBySecond].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      const info = await client.jsm.consumers.info(stream, durable);
      expect(info.ack_floor.stream_seq).toBe(total);
      expect(info.num_pending).toBe(0);
      expect(completedByFirst).toEqual([]);
    }, TEST_TIMEOUT_MS);
  });

  // Regression guard for a shutdown bug this test found in ConsumerRunner.stop()
  // (lib/consumer/consumer-runner.ts): it unsubscribed the pull consumer's inbox
  // (`this.messages?.stop()`) while pull requests were still being answered, so messages the
  // server had already sent arrived after the subscription was gone and were dropped unseen by
  // the client: neither handled nor nak'ed, ack-pending until ack_wait (30 s by default), out
  // of every other instance's reach until then. close() is called from inside a handler call,
  // i.e. while the consumer is busy pulling (as when SIGTERM arrives mid-batch); before the fix
  // about 9 shutdowns in 10 stranded 4-8 messages, so five rounds catch a regression reliably.
  it('under load, hands back every message it received while stopping: none is left for the ack wait', async () => {
    const { stream, subject } = await freshStream();
    const durable = uniqueName('underload');
    // A backlog, so the consumer is pulling the whole time.
    const backlog = 1_000;
    for (let i = 0; i < backlog; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => client.js.publish(subject, JSON.stringify({ n: i + j + 1 }))));
    }
    const naks = await watchNaks(client.nc, stream, durable);
    cleanups.push(() => naks.stop());

    const handled = new Set<number>();
    for (let round = 1; round <= 5; round++) {
      let roundHandled = 0;
      let app: JetStreamTestApp | undefined;
      let closing: Promise<void> | undefined;
      app = await apps.start({ servers: testNatsUrl() }, [
        handlerClass(`UnderLoad${round}`, subject, { durable, concurrency: 4, prefetch: 8 }, async (_payload, ctx) => {
          handled.add(ctx.sequence);
          if (++roundHandled === 20) closing = app!.close();
          await new Promise((resolve) => setTimeout(resolve, 1));
        }),
      ]);
      await waitFor(() => closing !== undefined, { timeoutMs: 10_000, message: () => `round ${round}: only ${roundHandled} handled` });
      await withDeadline(closing!, 10_000, `round ${round}: close()`);

      // This durable has no other client: every seq up to delivered.stream_seq went to the app,
      // which must have handled it or nak'ed it (the advisory may trail the nak slightly).
      const delivered = (await client.jsm.consumers.info(stream, durable)).delivered.stream_seq;
      const stranded = () => {
        const nacked = new Set(naks.seqs());
        const out: number[] = [];
        for (let seq = 1; seq <= delivered; seq++) if (!handled.has(seq) && !nacked.has(seq)) out.push(seq);
        return out;
      };
      await waitFor(() => stranded().length === 0, {
        timeoutMs: 5_000,
        message: () =>
          `round ${round}: seqs ${JSON.stringify(stranded())} were delivered to the stopping app but neither handled nor handed back; they wait for the 30 s ack wait`,
      });
    }
  }, TEST_TIMEOUT_MS);

  it('never acks a message whose handler throws', async () => {
    const { stream, subject } = await freshStream();
    const durable = uniqueName('throws');
    const deliveries: Delivery[] = [];
    const Throwing = handlerClass('AlwaysThrows', subject, { durable }, (payload, ctx) => {
      deliveries.push(toDelivery(payload, ctx));
      throw new Error('handler exploded');
    });
    const app = await apps.start({ servers: testNatsUrl() }, [Throwing]);
    await app.publisher.publish(subject, { n: 1 });

    // Redelivered after the failure: a second delivery of the same message.
    await waitFor(() => deliveries.length >= 2, { timeoutMs: 15_000, message: () => `only ${deliveries.length} deliveries` });
    expect(deliveries.slice(0, 2).map((d) => [d.seq, d.deliveryCount])).toEqual([
      [1, 1],
      [1, 2],
    ]);
    const info = await client.jsm.consumers.info(stream, durable);
    expect(info.ack_floor.stream_seq).toBe(0);
    expect(info.num_redelivered).toBeGreaterThanOrEqual(1);
    // Still owed to the handler: awaiting an ack, or queued for redelivery.
    expect(info.num_ack_pending + info.num_pending).toBeGreaterThanOrEqual(1);
    expect(app.logger.find('handler exploded', 'warn').length).toBeGreaterThanOrEqual(1);
  }, TEST_TIMEOUT_MS);

  describe('connection failures at startup', () => {
    it('rejects with ConnectionFailedError naming the server when nothing listens there', async () => {
      const port = await freeLoopbackPort();
      const logger = new CapturingLogger();
      const { value: error, ms } = await timed(
        apps.start({ servers: `nats://127.0.0.1:${port}` }, [], logger).then(
          () => undefined,
          (err: unknown) => err,
        ),
      );
      expect(error).toBeInstanceOf(ConnectionFailedError);
      expect((error as Error).message).toContain(`127.0.0.1:${port}`);
      expect(ms).toBeLessThan(10_000);
    }, TEST_TIMEOUT_MS);

    it('never shows credentials from the server URL in the error or in any log line', async () => {
      const port = await freeLoopbackPort();
      const logger = new CapturingLogger();
      const error = await apps.start({ servers: `nats://user:secret@127.0.0.1:${port}` }, [], logger).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(ConnectionFailedError);
      const message = (error as Error).message;
      expect(message).toContain(`127.0.0.1:${port}`);
      expect(message).not.toContain('secret');
      expect(message).not.toContain('user:');
      expect(String((error as Error).stack)).not.toContain('secret');
      expect(JSON.stringify((error as ConnectionFailedError).servers)).not.toContain('secret');
      expect(logger.text()).not.toContain('secret');
    }, TEST_TIMEOUT_MS);

    it('never logs credentials from the server URL on a successful connection either', async () => {
      const url = new URL(testNatsUrl());
      const logger = new CapturingLogger();
      const app = await apps.start({ servers: `nats://user:secret@${url.host}` }, [], logger);
      expect(app.connection.isClosed).toBe(false);
      expect(logger.find('Connected to NATS').length).toBe(1);
      await app.close();
      expect(logger.text()).not.toContain('secret');
    }, TEST_TIMEOUT_MS);

    it('rejects with ConnectionFailedError mentioning JetStream when the server runs without it', async () => {
      const server = await NatsServerProcess.start({ jetstream: false });
      cleanups.push(() => server.stop());
      const logger = new CapturingLogger();
      const error = await apps.start({ servers: server.url }, [], logger).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(ConnectionFailedError);
      expect((error as Error).message).toMatch(/JetStream/);
    }, TEST_TIMEOUT_MS);
  });

  it('shuts down within a bounded time while the server is unreachable', async () => {
    const server = await NatsServerProcess.start();
    cleanups.push(() => server.stop());
    const stream = uniqueName('DOWN');
    const subject = `${stream}.evt`;
    const received: Delivery[] = [];
    const logger = new CapturingLogger();
    const app = await apps.start(
      { servers: server.url, shutdownTimeoutMs: 1_000, streams: [{ name: stream, subjects: [`${stream}.>`] }] },
      [
        handlerClass('DownHandler', subject, { durable: uniqueName('down') }, (payload, ctx) => {
          received.push(toDelivery(payload, ctx));
        }),
      ],
      logger,
    );
    await app.publisher.publish(subject, { n: 1 });
    await waitFor(() => received.length >= 1, { timeoutMs: 10_000, message: 'first message not handled' });

    await server.kill('SIGKILL');
    await waitFor(() => logger.find('Disconnected', 'warn').length > 0, { timeoutMs: 10_000, message: 'no Disconnected warning' });

    // A service told to stop during a broker outage must still exit: nothing is in flight, so
    // close() has no reason to wait for the broker to come back. (Each flush the shutdown does
    // fails at the client's next reconnect attempt, about a second apart; ~4 s observed.)
    const { ms } = await timed(withDeadline(app.close(), 15_000, 'close() while the server is down'));
    expect(ms).toBeLessThan(10_000);
    expect(app.connection.isClosed).toBe(true);
  }, TEST_TIMEOUT_MS);

  it('logs the disconnect and the reconnect, and keeps consuming after the server comes back', async () => {
    const server = await NatsServerProcess.start();
    cleanups.push(() => server.stop());
    const stream = uniqueName('RECON');
    const subject = `${stream}.evt`;
    const durable = uniqueName('recon');
    const received: Delivery[] = [];
    const logger = new CapturingLogger();
    // Credentials in the URL (the server has no auth, so it ignores them): they must not reach any log line.
    const servers = `nats://user:secret@127.0.0.1:${server.port}`;
    const app = await apps.start(
      { servers, streams: [{ name: stream, subjects: [`${stream}.>`], storage: StorageType.File }] },
      [
        handlerClass('Reconnecting', subject, { durable }, (payload, ctx) => {
          received.push(toDelivery(payload, ctx));
        }),
      ],
      logger,
    );
    await app.publisher.publish(subject, { n: 1 });
    await waitFor(() => received.length >= 1, { timeoutMs: 10_000, message: 'first message not handled' });

    await server.kill('SIGKILL');
    await waitFor(() => logger.find('Disconnected', 'warn').length > 0, {
      timeoutMs: 10_000,
      message: () => `no Disconnected warning; logs:\n${logger.text()}`,
    });

    await server.restart();
    await waitFor(() => logger.find('Reconnected').length > 0, {
      timeoutMs: 15_000,
      message: () => `no Reconnected log; logs:\n${logger.text()}`,
    });

    // Same app, same connection object, same consumer: it resumed by itself.
    await app.publisher.publish(subject, { n: 2 });
    await waitFor(() => received.some((d) => (d.payload as { n: number }).n === 2), {
      timeoutMs: 15_000,
      message: () => `message published after the reconnect was not handled; got ${JSON.stringify(received.map((d) => d.payload))}`,
    });
    // (Message 1 may legitimately come again: a kill -9 can lose the server's record of its ack.)
    expect(received.filter((d) => (d.payload as { n: number }).n === 2).map((d) => d.seq)).toEqual([2]);
    expect(received.every((d) => d.consumer === durable)).toBe(true);
    expect(logger.text()).not.toContain('secret');
  }, TEST_TIMEOUT_MS);
});
