import 'reflect-metadata';
import { StorageType } from '@nats-io/jetstream';
import { PublishTimeoutError, type DeliveryMode } from '../../lib/index.js';
import { deferred, NatsServerProcess, uniqueName, withDeadline, waitFor } from '../harness/index.js';
import { CapturingLogger } from '../support/test-app.js';
import { AppTracker, handlerClass, openClient, timed, type RawClient } from '../integration/kit.js';
import { describeErrors, startPublishLoop } from './publish-loop.js';
import { scale } from './report.js';
import { Tally } from './tally.js';

const COUNT = scale(1_500, 20_000);
const TEST_TIMEOUT_MS = scale(90_000, 600_000);
const PUBLISH_TIMEOUT_MS = 1_000;
const PUBLISH_RETRIES = 2;
// Short, so messages whose ack died with the broker come back within the test's patience.
const ACK_WAIT_MS = 4_000;

/**
 * The broker is SIGKILLed in the middle of a stream of publishes and handler calls, then
 * restarted on the same port and store. The app is never told: its consumers must resume by
 * themselves, and its publisher must report every publish it could not confirm as an error
 * (never drop one silently) so the caller can publish it again with the same msg-id.
 */
describe('reliability: broker crash (kill -9 and restart, file storage)', () => {
  const apps = new AppTracker();
  let server: NatsServerProcess | undefined;
  let client: RawClient | undefined;

  afterEach(async () => {
    await client?.close();
    client = undefined;
    await apps.closeAll();
    await server?.stop();
    server = undefined;
  });

  async function startBroker(): Promise<NatsServerProcess> {
    server = await NatsServerProcess.start();
    return server;
  }

  async function runCrash(delivery: DeliveryMode): Promise<void> {
    const broker = await startBroker();
    const stream = uniqueName('CRASH');
    const subject = `${stream}.evt`;
    const durable = uniqueName('crash');
    const tally = new Tally();
    let calls = 0;
    const logger = new CapturingLogger();
    const app = await apps.start(
      {
        servers: broker.url,
        streams: [{ name: stream, subjects: [`${stream}.>`], storage: StorageType.File }],
        publishTimeoutMs: PUBLISH_TIMEOUT_MS,
        publishRetries: PUBLISH_RETRIES,
        shutdownTimeoutMs: 2_000,
      },
      [
        handlerClass('CrashHandler', subject, { durable, delivery, concurrency: 8, ackWaitMs: ACK_WAIT_MS }, (payload) => {
          calls++;
          // The side effect: recorded before the handler returns, i.e. before any ack.
          tally.handle((payload as { id: string }).id);
        }),
      ],
      logger,
    );

    const ids = Array.from({ length: COUNT }, (_, i) => `${delivery}-${i}`);
    const loop = startPublishLoop(ids, (id) => app.publisher.publish(subject, { id }, { msgId: id }), {
      lanes: 8,
      ratePerSecond: 1_000,
      retryPauseMs: 200,
      onStored: (id) => tally.confirmPublished(id),
    });
    try {
      // Mid-stream: a third published, handlers busy, most of the stream still to come.
      await waitFor(() => tally.publishedCount >= COUNT / 3 && tally.handledCount > 0, {
        timeoutMs: 30_000,
        message: () => `never reached a third of the stream: ${tally.describe()}`,
      });
      const killedAt = Date.now();
      const publishedAtKill = tally.publishedCount;
      await broker.kill('SIGKILL');

      // The outage is seen by callers as errors, not as silence: every lane has had one.
      await waitFor(() => loop.errorCount() >= 8, {
        timeoutMs: 30_000,
        message: () => `no publish failed while the broker was down: ${describeErrors(loop.stats)}`,
      });
      expect(tally.publishedCount).toBeLessThan(COUNT);
      const errorsWhileDown = loop.errorCount();
      await broker.restart();
      const restartedAt = Date.now();

      await withDeadline(loop.done, 60_000, `publishing after the restart (${describeErrors(loop.stats)})`);
      await waitFor(() => tally.complete(), { timeoutMs: 60_000, message: () => `consumers did not catch up: ${tally.describe()}` });
      // Settled for good: nothing pending or awaiting an ack, so no redelivery can still come.
      client = await openClient(broker.url);
      const raw = client;
      await waitFor(
        async () => {
          const info = await raw.jsm.consumers.info(stream, durable);
          return info.num_pending === 0 && info.num_ack_pending === 0;
        },
        { timeoutMs: 30_000, message: () => `consumer never settled: ${tally.describe()}` },
      );
      const streamInfo = await raw.jsm.streams.info(stream);

      // Exactly the published ids, each stored once: re-publishing with the same msg-id deduplicated.
      expect(streamInfo.state.messages).toBe(COUNT);
      expect(tally.publishedCount).toBe(COUNT);
      expect(tally.unexpected()).toEqual([]);
      expect(tally.lost()).toEqual([]);
      if (delivery === 'exactly-once') expect(tally.duplicates()).toEqual([]);
      expect(logger.find('Reconnected').length).toBeGreaterThan(0);

      const dups = tally.duplicates().length;
      tally.record(
        `broker crash (kill -9 + restart), ${delivery}`,
        `resumed by itself; publishes that errored were re-published with the same msg-id; stream holds ${streamInfo.state.messages}`,
        {
          duplicatesVary: delivery === 'at-least-once',
          measured:
            `outage ${((restartedAt - killedAt) / 1000).toFixed(1)} s at ${publishedAtKill}/${COUNT} published; ` +
            `${loop.errorCount()} publish calls errored (${describeErrors(loop.stats)}; ${errorsWhileDown} seen before the restart), ` +
            `${loop.stats.storedAsDuplicate} re-publishes answered "duplicate"; ` +
            `${calls} handler calls${delivery === 'at-least-once' && dups > 0 ? ` (${dups} redelivered after the lost acks)` : ''}`,
        },
      );
    } finally {
      loop.stop();
    }
  }

  it(
    'at-least-once: consumers resume by themselves, errored publishes are re-published with the same msg-id; nothing is lost',
    () => runCrash('at-least-once'),
    TEST_TIMEOUT_MS,
  );

  it(
    'exactly-once: nothing is lost and no handler side effect happens twice',
    () => runCrash('exactly-once'),
    TEST_TIMEOUT_MS,
  );

  // Regression guard: the handler of an exactly-once message finished while the broker was down,
  // so its idempotency record could not be marked done. Before the fix the redelivery found the
  // record still "processing", waited out the lease and ran the handler a second time.
  it('exactly-once: a handler that finished while the broker was down is not run again after the restart', async () => {
    const broker = await startBroker();
    const stream = uniqueName('EOCRASH');
    const subject = `${stream}.evt`;
    const durable = uniqueName('eocrash');
    const entered = deferred<void>();
    const release = deferred<void>();
    let calls = 0;
    const app = await apps.start(
      {
        servers: broker.url,
        streams: [{ name: stream, subjects: [`${stream}.>`], storage: StorageType.File }],
        publishTimeoutMs: PUBLISH_TIMEOUT_MS,
        shutdownTimeoutMs: 2_000,
      },
      [
        handlerClass('EoCrash', subject, { durable, delivery: 'exactly-once', ackWaitMs: 3_000 }, async () => {
          calls++;
          entered.resolve();
          await release.promise;
        }),
      ],
    );
    await app.publisher.publish(subject, { id: 'only' }, { msgId: 'only' });
    await withDeadline(entered.promise, 10_000, 'the handler never started');
    await broker.kill('SIGKILL');
    release.resolve();
    await broker.restart();
    client = await openClient(broker.url);
    const raw = client;
    await waitFor(
      async () => {
        const info = await raw.jsm.consumers.info(stream, durable);
        return info.ack_floor.stream_seq === 1 && info.num_ack_pending === 0 && info.num_pending === 0;
      },
      { timeoutMs: 30_000, intervalMs: 200, message: () => `message never settled (${calls} handler calls)` },
    );
    expect(calls).toBe(1);
  }, TEST_TIMEOUT_MS);

  it('a publish while the broker is down fails after the bounded retries with PublishTimeoutError; the same msg-id later is stored once', async () => {
    const broker = await startBroker();
    const stream = uniqueName('OUTAGE');
    const subject = `${stream}.evt`;
    const app = await apps.start({
      servers: broker.url,
      streams: [{ name: stream, subjects: [`${stream}.>`], storage: StorageType.File }],
      publishTimeoutMs: PUBLISH_TIMEOUT_MS,
      publishRetries: PUBLISH_RETRIES,
    });
    await app.publisher.publish(subject, { n: 0 }, { msgId: 'before' });
    await broker.kill('SIGKILL');

    const { value: error, ms } = await timed(
      app.publisher.publish(subject, { n: 1 }, { msgId: 'during-outage' }).then(
        () => undefined,
        (err: unknown) => err,
      ),
    );
    expect(error).toBeInstanceOf(PublishTimeoutError);
    const timeout = error as PublishTimeoutError;
    expect(timeout.attempts).toBe(PUBLISH_RETRIES + 1);
    expect(timeout.subject).toBe(subject);
    expect(timeout.message).toMatch(/publish again with the same msgId/);
    // Bounded: the attempts plus the client's short backoff between them, not a hang.
    expect(ms).toBeGreaterThanOrEqual((PUBLISH_RETRIES + 1) * PUBLISH_TIMEOUT_MS - 50);
    expect(ms).toBeLessThan((PUBLISH_RETRIES + 1) * PUBLISH_TIMEOUT_MS + 10_000);

    await broker.restart();
    // The caller's retry: same msg-id. Whether the failed attempt reached the stream after the
    // reconnect (the client resends what it buffered) or not, the stream now holds it once.
    await waitFor(
      async () => {
        try {
          await app.publisher.publish(subject, { n: 1 }, { msgId: 'during-outage' });
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 30_000, intervalMs: 200, message: 'publishing after the restart' },
    );
    client = await openClient(broker.url);
    const info = await client.jsm.streams.info(stream);
    expect(info.state.messages).toBe(2);
  }, TEST_TIMEOUT_MS);
});
