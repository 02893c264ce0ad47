import 'reflect-metadata';
import { headers as natsHeaders, type Subscription } from '@nats-io/transport-node';
import {
  ConnectionClosedError,
  JetStreamConnection,
  InvalidOptionsError,
  InvalidSubjectError,
  JetStreamModule,
  JetStreamPublisher,
  NoStreamForSubjectError,
  PayloadEncodingError,
  PublishRejectedError,
  PublishTimeoutError,
  type BatchItem,
  type JetStreamModuleOptions,
} from '../../lib/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { sharedServerHooks } from './kit.js';

/**
 * JetStreamPublisher against a real server: what is stored, deduplication, expectations, and
 * the typed error for every way a publish can fail.
 */

const subscriptions: Subscription[] = [];

const hooks = sharedServerHooks();

afterEach(() => {
  for (const sub of subscriptions.splice(0)) sub.unsubscribe();
});

interface Setup {
  readonly app: TestApp;
  readonly publisher: JetStreamPublisher;
  /** Stream name, also the prefix of its subjects (`<stream>.>`). */
  readonly stream: string;
}

async function setup(prefix: string, extra: Partial<JetStreamModuleOptions> = {}): Promise<Setup> {
  const stream = uniqueName(prefix);
  const app = await startApp({
    imports: [JetStreamModule.forRoot({ servers: testNatsUrl(), streams: [{ name: stream, subjects: [`${stream}.>`] }], ...extra })],
  });
  hooks.apps.track(app);
  return { app, publisher: app.app.get(JetStreamPublisher), stream };
}

/**
 * A core subscriber that never replies: a JetStream publish to its subject has a responder, so
 * it waits for an ack that never comes. Collects the Nats-Msg-Id of every request it gets.
 */
async function silentResponder(): Promise<{ subject: string; msgIds: Array<string | undefined> }> {
  const subject = `${uniqueName('silent')}.event`;
  const msgIds: Array<string | undefined> = [];
  subscriptions.push(
    hooks.client.nc.subscribe(subject, {
      callback: (_err, msg) => {
        msgIds.push(msg.headers?.get('Nats-Msg-Id'));
      },
    }),
  );
  await hooks.client.nc.flush();
  return { subject, msgIds };
}

/**
 * Barrier: a core message sent on the app's own connection after the requests reaches the
 * silent subscriber after all of them (NATS keeps per-connection order), so the requests
 * counted once it arrives are all there ever were.
 */
async function flushThrough(app: TestApp, target: { subject: string; msgIds: Array<string | undefined> }): Promise<number> {
  const marker = `sentinel-${uniqueName('m')}`;
  const hdrs = natsHeaders();
  hdrs.set('Nats-Msg-Id', marker);
  app.app.get(JetStreamConnection).nc.publish(target.subject, 'sentinel', { headers: hdrs });
  await waitFor(() => target.msgIds.includes(marker), { timeoutMs: 5_000, message: 'the sentinel to reach the silent subscriber' });
  return target.msgIds.indexOf(marker);
}

async function storedCount(stream: string): Promise<number> {
  return (await hooks.client.jsm.streams.info(stream)).state.messages;
}

async function stored(stream: string, seq: number) {
  const msg = await hooks.client.jsm.streams.getMessage(stream, { seq });
  if (!msg) throw new Error(`no message ${seq} in ${stream}`);
  return msg;
}

/** The rejection of a promise that must reject. */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

describe('JetStreamPublisher.publish', () => {
  it('resolves with the stream, the sequence and duplicate=false once stored', async () => {
    const { publisher, stream } = await setup('PUB_ACK');
    expect(await publisher.publish(`${stream}.a`, { n: 1 })).toEqual({ stream, seq: 1, duplicate: false });
    expect(await publisher.publish(`${stream}.b`, { n: 2 })).toEqual({ stream, seq: 2, duplicate: false });
    expect(await storedCount(stream)).toBe(2);
  });

  it('stores JSON by default and Uint8Array payloads byte for byte', async () => {
    const { publisher, stream } = await setup('PUB_CODEC');
    const object = { name: 'Zoë', n: 1.5, list: [true, null], nested: { at: '2025-01-01T00:00:00.000Z' } };
    const bytes = new Uint8Array([0x00, 0xff, 0xc3, 0x28, 0x80, 0x7b]);

    const a = await publisher.publish(`${stream}.json`, object);
    const b = await publisher.publish(`${stream}.bytes`, bytes);
    const c = await publisher.publish(`${stream}.string`, 'plain text');
    const d = await publisher.publish(`${stream}.date`, { when: new Date('2025-01-02T03:04:05.006Z') });

    const decode = (data: Uint8Array) => new TextDecoder().decode(data);
    const storedA = await stored(stream, a.seq);
    expect(storedA.subject).toBe(`${stream}.json`);
    expect(decode(storedA.data)).toBe(JSON.stringify(object));
    expect(Buffer.from((await stored(stream, b.seq)).data).equals(Buffer.from(bytes))).toBe(true);
    // A string is a JSON value like any other: it is stored quoted.
    expect(decode((await stored(stream, c.seq)).data)).toBe('"plain text"');
    expect(decode((await stored(stream, d.seq)).data)).toBe('{"when":"2025-01-02T03:04:05.006Z"}');
  });

  it('drops a repeated msgId: the second publish reports duplicate=true with the first sequence', async () => {
    const { publisher, stream } = await setup('PUB_DEDUP');
    const first = await publisher.publish(`${stream}.pay`, { amount: 5 }, { msgId: 'payment-77' });
    const second = await publisher.publish(`${stream}.pay`, { amount: 5 }, { msgId: 'payment-77' });
    expect(first).toEqual({ stream, seq: 1, duplicate: false });
    expect(second).toEqual({ stream, seq: 1, duplicate: true });
    expect(await storedCount(stream)).toBe(1);
    // A different msgId is a different message.
    expect(await publisher.publish(`${stream}.pay`, { amount: 5 }, { msgId: 'payment-78' })).toEqual({ stream, seq: 2, duplicate: false });
  });

  it('sends the headers with the message', async () => {
    const { publisher, stream } = await setup('PUB_HDR');
    const ack = await publisher.publish(
      `${stream}.h`,
      { n: 1 },
      { msgId: 'with-headers', headers: { 'x-tenant': 'acme', 'x-tags': ['red', 'blue'] } },
    );
    const msg = await stored(stream, ack.seq);
    expect(msg.header.get('x-tenant')).toBe('acme');
    expect(msg.header.values('x-tags')).toEqual(['red', 'blue']);
    expect(msg.header.get('Nats-Msg-Id')).toBe('with-headers');
  });

  it('fails with PublishRejectedError (code 10071) when expect.lastSequence does not match', async () => {
    const { publisher, stream } = await setup('PUB_EXPECT');
    await publisher.publish(`${stream}.e`, { n: 1 });

    const err = await rejection(publisher.publish(`${stream}.e`, { n: 2 }, { expect: { lastSequence: 5 } }));
    expect(err).toBeInstanceOf(PublishRejectedError);
    expect((err as PublishRejectedError).code).toBe(10071);
    expect((err as PublishRejectedError).subject).toBe(`${stream}.e`);
    expect(err.message).toContain(`"${stream}.e"`);
    expect(err.message).toContain('10071');
    expect(await storedCount(stream)).toBe(1);

    // The matching expectation goes through.
    expect(await publisher.publish(`${stream}.e`, { n: 3 }, { expect: { lastSequence: 1 } })).toEqual({ stream, seq: 2, duplicate: false });
  });

  it('fails with NoStreamForSubjectError naming the subject when no stream captures it', async () => {
    const { publisher } = await setup('PUB_NOSTREAM');
    const subject = `${uniqueName('nowhere')}.event`;
    const err = await rejection(publisher.publish(subject, { n: 1 }));
    expect(err).toBeInstanceOf(NoStreamForSubjectError);
    expect((err as NoStreamForSubjectError).subject).toBe(subject);
    expect(err.message).toContain(`"${subject}"`);
  });

  it('rejects invalid subjects with InvalidSubjectError before sending anything', async () => {
    const { publisher, stream } = await setup('PUB_BADSUBJ');
    const invalid = ['', `${stream} x`, `${stream}..x`, `${stream}.*`, `${stream}.>`, `.${stream}`, `${stream}.`, `${stream}.\tx`];
    for (const subject of invalid) {
      const err = await rejection(publisher.publish(subject, { n: 1 }));
      expect(err).toBeInstanceOf(InvalidSubjectError);
      expect((err as InvalidSubjectError).subject).toBe(subject);
    }
    expect(await storedCount(stream)).toBe(0);
    // The connection is still healthy: nothing malformed reached the server.
    expect(await publisher.publish(`${stream}.ok`, { n: 2 })).toEqual({ stream, seq: 1, duplicate: false });
  });

  it('checks every subject that differs from the last valid one, also a missing one first', async () => {
    const { publisher, stream } = await setup('PUB_SUBJCACHE');
    // The publisher remembers only the last subject that passed: undefined must not match it.
    expect(await rejection(publisher.publish(undefined as unknown as string, { n: 0 }))).toBeInstanceOf(InvalidSubjectError);
    await publisher.publish(`${stream}.ok`, { n: 1 });
    await publisher.publish(`${stream}.ok`, { n: 2 });
    for (const subject of [`${stream}.*`, '', undefined as unknown as string]) {
      expect(await rejection(publisher.publish(subject, { n: 3 }))).toBeInstanceOf(InvalidSubjectError);
    }
    expect(await storedCount(stream)).toBe(2);
  });

  it('rejects payloads that cannot be encoded with PayloadEncodingError', async () => {
    const { publisher, stream } = await setup('PUB_ENCODE');
    const circular: Record<string, unknown> = { name: 'loop' };
    circular.self = circular;
    for (const payload of [circular, { big: 10n }, 10n, Symbol('s'), () => 1]) {
      const err = await rejection(publisher.publish(`${stream}.x`, payload));
      expect(err).toBeInstanceOf(PayloadEncodingError);
    }
    expect(await storedCount(stream)).toBe(0);
  });

  it('fails with PublishTimeoutError when the ack never comes', async () => {
    const { app, publisher } = await setup('PUB_TIMEOUT', { publishRetries: 0 });
    const silent = await silentResponder();

    const started = performance.now();
    const err = await rejection(publisher.publish(silent.subject, { n: 1 }, { timeoutMs: 300 }));
    const elapsed = performance.now() - started;
    expect(err).toBeInstanceOf(PublishTimeoutError);
    expect((err as PublishTimeoutError).subject).toBe(silent.subject);
    expect((err as PublishTimeoutError).timeoutMs).toBe(300);
    expect(err.message).toContain(`"${silent.subject}"`);
    expect(err.message).toContain('300 ms');
    expect(elapsed).toBeGreaterThanOrEqual(250);
    // Not a hang and not the default timeout: generous, since a loaded machine adds slack.
    expect(elapsed).toBeLessThan(10_000);
    // Sent exactly once (no resends with publishRetries 0).
    expect(await flushThrough(app, silent)).toBe(1);
  });

  it('resends a timed-out publish publishRetries times with one Nats-Msg-Id, then fails with PublishTimeoutError', async () => {
    const { app, publisher } = await setup('PUB_TIMEOUT_RETRY', { publishRetries: 2 });
    const silent = await silentResponder();

    const err = await rejection(publisher.publish(silent.subject, { n: 1 }, { timeoutMs: 200 }));
    expect(err).toBeInstanceOf(PublishTimeoutError);
    expect((err as PublishTimeoutError).subject).toBe(silent.subject);
    expect(await flushThrough(app, silent)).toBe(3);
    const [first, ...resends] = silent.msgIds.slice(0, 3);
    expect(first).toEqual(expect.any(String));
    expect(resends).toEqual([first, first]);
  });

  it('uses the module publishTimeoutMs when the publish does not set one', async () => {
    const { publisher } = await setup('PUB_TIMEOUT_DEF', { publishTimeoutMs: 400, publishRetries: 0 });
    const silent = await silentResponder();

    const started = performance.now();
    const err = await rejection(publisher.publish(silent.subject, { n: 1 }));
    expect(err).toBeInstanceOf(PublishTimeoutError);
    expect((err as PublishTimeoutError).timeoutMs).toBe(400);
    expect(performance.now() - started).toBeGreaterThanOrEqual(350);
  });

  it('fails with ConnectionClosedError once the application is closed', async () => {
    const { app, publisher, stream } = await setup('PUB_CLOSED');
    await publisher.publish(`${stream}.before`, { n: 1 });
    await app.close();

    const err = await rejection(publisher.publish(`${stream}.after`, { n: 2 }));
    expect(err).toBeInstanceOf(ConnectionClosedError);
    expect(err.message).toContain(`"${stream}.after"`);
    expect(await storedCount(stream)).toBe(1);
  });
});

describe('JetStreamPublisher.publishBatch', () => {
  it('publishes 500 items in order; an invalid-subject and a no-stream item fail alone', async () => {
    const { publisher, stream } = await setup('PUB_BATCH');
    const invalidAt = 137;
    const noStreamAt = 311;
    const noStreamSubject = `${uniqueName('nowhere')}.x`;
    const items: BatchItem<{ i: number }>[] = Array.from({ length: 500 }, (_, i) => ({
      subject: i === invalidAt ? `${stream}..bad` : i === noStreamAt ? noStreamSubject : `${stream}.item.${i % 7}`,
      payload: { i },
    }));

    const results = await publisher.publishBatch(items);

    expect(results).toHaveLength(500);
    results.forEach((r, i) => expect(r.subject).toBe(items[i].subject));
    const invalid = results[invalidAt];
    expect(invalid.ok).toBe(false);
    expect(!invalid.ok && invalid.error).toBeInstanceOf(InvalidSubjectError);
    const noStream = results[noStreamAt];
    expect(noStream.ok).toBe(false);
    expect(!noStream.ok && noStream.error).toBeInstanceOf(NoStreamForSubjectError);

    const okSeqs: number[] = [];
    results.forEach((r, i) => {
      if (i === invalidAt || i === noStreamAt) return;
      if (!r.ok) throw new Error(`item ${i} failed: ${r.error.message}`);
      expect(r.result.stream).toBe(stream);
      expect(r.result.duplicate).toBe(false);
      okSeqs.push(r.result.seq);
    });
    expect(okSeqs).toHaveLength(498);
    // Sent in item order: sequences strictly increase with the item index, with no gaps.
    expect(okSeqs).toEqual(Array.from({ length: 498 }, (_, k) => k + 1));
    expect(await storedCount(stream)).toBe(498);

    // Spot-check that each sequence holds the item it was reported for.
    for (const i of [0, invalidAt - 1, invalidAt + 1, noStreamAt + 1, 499]) {
      const r = results[i];
      if (!r.ok) throw new Error(`item ${i} unexpectedly failed`);
      const msg = await stored(stream, r.result.seq);
      expect(msg.subject).toBe(items[i].subject);
      expect(JSON.parse(new TextDecoder().decode(msg.data))).toEqual({ i });
    }
  });

  it('keeps item order with a small window too', async () => {
    const { publisher, stream } = await setup('PUB_BATCH_W');
    const items = Array.from({ length: 40 }, (_, i) => ({ subject: `${stream}.w`, payload: { i } }));
    const results = await publisher.publishBatch(items, { window: 3 });
    expect(results.map((r) => (r.ok ? r.result.seq : -1))).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  });

  it.each([0, -1, 1.5, Number.NaN])('rejects window %p with InvalidOptionsError and sends nothing', async (window) => {
    const { publisher, stream } = await setup('PUB_BATCH_BADW');
    const err = await rejection(publisher.publishBatch([{ subject: `${stream}.x`, payload: 1 }], { window }));
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect(err.message).toContain('window');
    expect(await storedCount(stream)).toBe(0);
  });

  it('an empty batch resolves to no results', async () => {
    const { publisher } = await setup('PUB_BATCH_EMPTY');
    await expect(publisher.publishBatch([])).resolves.toEqual([]);
  });
});
