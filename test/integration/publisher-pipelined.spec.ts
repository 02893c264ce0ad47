import 'reflect-metadata';
import { StorageType } from '@nats-io/jetstream';
import type { Subscription } from '@nats-io/transport-node';
import {
  ConnectionClosedError,
  NoStreamForSubjectError,
  PublishRejectedError,
  PublishTimeoutError,
  type BatchItem,
  type BatchItemResult,
  type JetStreamModuleOptions,
} from '../../lib/index.js';
import { NatsServerProcess, testNatsUrl, uniqueName, waitFor, withDeadline } from '../harness/index.js';
import { AppTracker, openClient, timed, type JetStreamTestApp, type RawClient } from './kit.js';

/**
 * The publisher's own ack path (PUBs with a reply subject on the module's reply inbox, each
 * PubAck settling its call by token) under many publishes in flight, against a real server:
 * every way an ack can fail reaches the right call, with the publisher's typed error, while the
 * calls around it succeed.
 */

const apps = new AppTracker();
let client: RawClient;
const subscriptions: Subscription[] = [];

beforeAll(async () => {
  client = await openClient(testNatsUrl());
});
afterEach(async () => {
  for (const sub of subscriptions.splice(0)) sub.unsubscribe();
  await apps.closeAll();
});
afterAll(async () => {
  await client.close();
});

async function appWithStream(prefix: string, extra: Partial<JetStreamModuleOptions> = {}, servers = testNatsUrl()) {
  const stream = uniqueName(prefix);
  // File storage: the restart tests need the stream to outlive the broker process.
  const app = await apps.start({ servers, streams: [{ name: stream, subjects: [`${stream}.>`], storage: StorageType.File }], ...extra });
  return { app, stream };
}

/** A core subscriber that never answers: publishes to it wait for an ack that never comes. */
async function silentSubject(): Promise<string> {
  const subject = `${uniqueName('silent')}.event`;
  subscriptions.push(client.nc.subscribe(subject, { callback: () => undefined }));
  await client.nc.flush();
  return subject;
}

function failures(results: readonly BatchItemResult[]): Array<{ index: number; error: Error }> {
  return results.flatMap((r, index) => (r.ok ? [] : [{ index, error: r.error }]));
}

describe('JetStreamPublisher: pipelined acks', () => {
  it('a timed-out publish fails alone with PublishTimeoutError while the publishes around it are stored', async () => {
    const { app, stream } = await appWithStream('PIPE_TIMEOUT', { publishRetries: 0 });
    const silent = await silentSubject();
    const items: BatchItem[] = Array.from({ length: 300 }, (_, i) =>
      i % 100 === 50 ? { subject: silent, payload: { i }, options: { timeoutMs: 300 } } : { subject: `${stream}.ok`, payload: { i } },
    );
    const results = await app.publisher.publishBatch(items, { window: 64 });
    const failed = failures(results);
    expect(failed.map((f) => f.index)).toEqual([50, 150, 250]);
    for (const { error } of failed) {
      expect(error).toBeInstanceOf(PublishTimeoutError);
      expect((error as PublishTimeoutError).subject).toBe(silent);
      expect((error as PublishTimeoutError).timeoutMs).toBe(300);
    }
    expect((await client.jsm.streams.info(stream)).state.messages).toBe(297);
  });

  it('each publish keeps its own timeout: a longer one than the module default is not cut short, a shorter one fires', async () => {
    const { app } = await appWithStream('PIPE_TIMEOUTS', { publishTimeoutMs: 300, publishRetries: 0 });
    const silent = await silentSubject();
    const [long, short, byDefault] = await Promise.all([
      timed(app.publisher.publish(silent, { n: 1 }, { timeoutMs: 2_000 }).catch((err: unknown) => err)),
      timed(app.publisher.publish(silent, { n: 2 }, { timeoutMs: 100 }).catch((err: unknown) => err)),
      timed(app.publisher.publish(silent, { n: 3 }).catch((err: unknown) => err)),
    ]);
    expect(long.value).toBeInstanceOf(PublishTimeoutError);
    expect((long.value as PublishTimeoutError).timeoutMs).toBe(2_000);
    expect(long.ms).toBeGreaterThanOrEqual(1_950);
    expect(short.value).toBeInstanceOf(PublishTimeoutError);
    expect((short.value as PublishTimeoutError).timeoutMs).toBe(100);
    expect(short.ms).toBeGreaterThanOrEqual(90);
    expect(byDefault.value).toBeInstanceOf(PublishTimeoutError);
    expect((byDefault.value as PublishTimeoutError).timeoutMs).toBe(300);
    expect(byDefault.ms).toBeGreaterThanOrEqual(290);
    // Loose upper bound (a loaded machine): not a hang, and the short one before the long one.
    expect(short.ms).toBeLessThan(long.ms);
    expect(long.ms).toBeLessThan(10_000);
  });

  it('no stream (503 no responders) fails with NoStreamForSubjectError after the resends; the rest of the window is stored', async () => {
    const { app, stream } = await appWithStream('PIPE_NOSTREAM', { publishRetries: 2 });
    const nowhere = `${uniqueName('nowhere')}.event`;
    const items: BatchItem[] = Array.from({ length: 200 }, (_, i) => ({ subject: i % 40 === 7 ? nowhere : `${stream}.ok`, payload: { i } }));
    const results = await app.publisher.publishBatch(items);
    const failed = failures(results);
    expect(failed.map((f) => f.index)).toEqual([7, 47, 87, 127, 167]);
    for (const { error } of failed) {
      expect(error).toBeInstanceOf(NoStreamForSubjectError);
      expect((error as NoStreamForSubjectError).subject).toBe(nowhere);
    }
    expect((await client.jsm.streams.info(stream)).state.messages).toBe(195);
  });

  it('reports duplicate=true with the first sequence for a msg-id repeated inside one window', async () => {
    const { app, stream } = await appWithStream('PIPE_DEDUP');
    const items: BatchItem[] = Array.from({ length: 100 }, (_, i) => ({
      subject: `${stream}.pay`,
      payload: { i },
      options: { msgId: `order-${i % 40}` },
    }));
    const results = await app.publisher.publishBatch(items);
    expect(failures(results)).toEqual([]);
    results.forEach((r, i) => {
      if (!r.ok) throw r.error;
      expect(r.result.duplicate).toBe(i >= 40);
      // Sent in item order, so the first 40 are stored as 1..40 and repeats point back at them.
      expect(r.result.seq).toBe((i % 40) + 1);
    });
    expect((await client.jsm.streams.info(stream)).state.messages).toBe(40);
  });

  it('a failed expectation rejects its own publish with the server code; the others in flight are stored', async () => {
    const { app, stream } = await appWithStream('PIPE_EXPECT');
    await app.publisher.publish(`${stream}.first`, { n: 0 }, { msgId: 'first' });
    const items: BatchItem[] = [
      { subject: `${stream}.a`, payload: 1, options: { expect: { lastSequence: 99 } } },
      { subject: `${stream}.a`, payload: 2, options: { expect: { lastMsgId: 'not-the-last' } } },
      { subject: `${stream}.a`, payload: 3, options: { expect: { streamName: 'SOME_OTHER_STREAM' } } },
      { subject: `${stream}.first`, payload: 4, options: { expect: { lastSubjectSequence: 7 } } },
      { subject: `${stream}.a`, payload: 5, options: { expect: { lastSequence: 1, lastMsgId: 'first', streamName: stream } } },
      { subject: `${stream}.b`, payload: 6 },
    ];
    const results = await app.publisher.publishBatch(items);
    const codes = results.map((r) => (r.ok ? 'ok' : r.error instanceof PublishRejectedError ? r.error.code : r.error.name));
    // 10071 wrong last sequence, 10070 wrong last msg-id, 10060 expected stream mismatch.
    expect(codes).toEqual([10071, 10070, 10060, 10071, 'ok', 'ok']);
    for (const r of results.slice(0, 4)) expect(!r.ok && r.error.message).toContain(`"${r.subject}"`);
    expect((await client.jsm.streams.info(stream)).state.messages).toBe(3);
  });

  it('publishes still waiting for their ack fail with ConnectionClosedError when the app closes', async () => {
    const { app } = await appWithStream('PIPE_CLOSE', { publishTimeoutMs: 30_000, publishRetries: 0 });
    const silent = await silentSubject();
    const pending = Array.from({ length: 20 }, (_, i) => app.publisher.publish(silent, { i }).catch((err: unknown) => err));
    await client.nc.flush();
    const closed = app.close();
    const errors = await withDeadline(Promise.all(pending), 10_000, 'pending publishes settled by the close');
    await closed;
    for (const error of errors) {
      expect(error).toBeInstanceOf(ConnectionClosedError);
      expect((error as Error).message).toContain(`"${silent}"`);
    }
  });
});

describe('JetStreamPublisher: pipelined acks across a broker restart', () => {
  let server: NatsServerProcess | undefined;
  afterEach(async () => {
    await apps.closeAll();
    await server?.stop();
    server = undefined;
  });

  it('publishes sent while the broker is down are resent with their msg-id after their timeout and stored once it is back', async () => {
    server = await NatsServerProcess.start();
    const { app, stream } = await appWithStream('PIPE_DOWN', { publishTimeoutMs: 2_000, publishRetries: 3 }, server.url);
    await app.publisher.publish(`${stream}.before`, { n: 0 });
    await server.kill('SIGKILL');
    await waitFor(() => app.connection.state === 'reconnecting', { timeoutMs: 10_000, message: 'the client to see the drop' });
    // The client discards what it buffered while disconnected when it reconnects, as it does for its
    // own requests: these go out again when their first timeout ends, with the same msg-ids.
    const during = app.publisher.publishBatch(
      Array.from({ length: 100 }, (_, i) => ({ subject: `${stream}.during`, payload: { i }, options: { msgId: `d-${i}` } })),
    );
    await server.restart();
    const results = await withDeadline(during, 30_000, 'publishes sent during the outage');
    expect(failures(results)).toEqual([]);
    const raw = await openClient(server.url);
    try {
      expect((await raw.jsm.streams.info(stream)).state.messages).toBe(101);
    } finally {
      await raw.close();
    }
  });

  it('a kill -9 mid-pipeline fails unconfirmed publishes with PublishTimeoutError; republished with their msg-id, each is stored once', async () => {
    server = await NatsServerProcess.start();
    const { app, stream } = await appWithStream('PIPE_KILL', { publishTimeoutMs: 200, publishRetries: 1 }, server.url);
    const count = 4_000;
    const items = (ids: readonly number[]): BatchItem[] => ids.map((i) => ({ subject: `${stream}.evt`, payload: { i }, options: { msgId: `k-${i}` } }));
    let stored = 0;
    const first = app.publisher.publishBatch(items(Array.from({ length: count }, (_, i) => i)), { window: 256 });
    // Mid-pipeline: kill once some are stored (the stream count, read on a connection of our own).
    const watcher = await openClient(server.url);
    await waitFor(
      async () => {
        stored = (await watcher.jsm.streams.info(stream)).state.messages;
        return stored >= 400;
      },
      { timeoutMs: 30_000, intervalMs: 10, message: () => `never stored 400 (${stored})` },
    );
    await watcher.close();
    await server.kill('SIGKILL');
    const results = await withDeadline(first, 60_000, 'the pipeline to settle after the kill');
    const failed = failures(results);
    expect(failed.length).toBeGreaterThan(0);
    for (const { error } of failed) {
      // A clear error naming the subject, never a hang or a silent drop.
      expect(error).toBeInstanceOf(PublishTimeoutError);
      expect((error as PublishTimeoutError).subject).toBe(`${stream}.evt`);
      expect((error as PublishTimeoutError).attempts).toBe(2);
    }
    await server.restart();
    // The caller's retry with the same msg-ids until all are confirmed.
    let missing = failed.map((f) => f.index);
    await waitFor(
      async () => {
        const again = await app.publisher.publishBatch(items(missing), { window: 256 });
        missing = missing.filter((_, k) => !again[k].ok);
        return missing.length === 0;
      },
      { timeoutMs: 60_000, intervalMs: 200, message: () => `${missing.length} publishes never confirmed after the restart` },
    );
    const raw = await openClient(server.url);
    try {
      expect((await raw.jsm.streams.info(stream)).state.messages).toBe(count);
    } finally {
      await raw.close();
    }
  });
});
