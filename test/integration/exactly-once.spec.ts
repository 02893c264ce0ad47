import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { Kvm } from '@nats-io/kv';
import { DeadLetterService, IDEMPOTENCY_KEY_HEADER, OnEvent, type EventContext } from '../../lib/index.js';
import { deferred, testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { WorkerProcess } from '../reliability/child-app.js';
import { createStream, freshStream, Order, sharedServerHooks } from './kit.js';
import { IdempotencyStore } from '../../lib/delivery/idempotency-store.js';
import { replayConsumer } from '../../lib/provisioning/consumer-replay.js';

/**
 * Exactly-once across instances and through store failures. The record of a message is one
 * KV lease; the confirmed ack stands for success (delivery.spec.ts covers the single-instance
 * rules).
 */
const hooks = sharedServerHooks();

// A bucket per test: other specs share the default one.
const buckets: string[] = [];

async function setup(prefix: string): Promise<{ stream: string; subject: string; bucket: string }> {
  const stream = uniqueName(prefix);
  await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
  const bucket = uniqueName('eo');
  buckets.push(bucket);
  return { stream, subject: `${stream}.x`, bucket };
}

afterEach(async () => {
  for (const bucket of buckets.splice(0)) await hooks.client.jsm.streams.delete(`KV_${bucket}`).catch(() => undefined);
});

describe('exactly-once', () => {
  it('two instances on one durable handle each key once when every message is published twice', async () => {
    const { stream, subject, bucket } = await setup('EOTWO');
    const calls = new Map<string, number>();
    @Injectable()
    class Handler {
      @OnEvent(subject, { durable: 'eotwo', delivery: 'exactly-once', concurrency: 16 })
      async handle(payload: { key: string }) {
        calls.set(payload.key, (calls.get(payload.key) ?? 0) + 1);
        // Long enough that copies meet a running lease on the other instance.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    const a = await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [Handler]);
    await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [Handler]);
    const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
    // Each key twice, as distinct messages (a repeated publish after the duplicate window looks
    // like this): the second copy right behind the first, so both instances get copies.
    await a.publisher.publishBatch(
      keys.flatMap((key) => [1, 2].map((copy) => ({ subject, payload: { key }, options: { msgId: `${key}-${copy}`, headers: { [IDEMPOTENCY_KEY_HEADER]: key } } }))),
    );
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eotwo')).num_ack_pending === 0 && calls.size === 300, {
      timeoutMs: 20_000,
      message: 'all 600 messages settled',
    });
    const info = await hooks.client.jsm.consumers.info(stream, 'eotwo');
    expect(info.num_pending).toBe(0);
    expect(info.ack_floor.stream_seq).toBe(600);
    expect([...calls.entries()].filter(([, n]) => n !== 1)).toEqual([]);
  });

  it('does not give a failed message up while its lease cannot be released, and handles it once the store is back', async () => {
    const { stream, subject, bucket } = await setup('EOREL');
    const dlq = { stream: uniqueName('DL'), subject: `${uniqueName('DL')}.letters` };
    const attempts: number[] = [];
    const kvm = new Kvm(hooks.client.nc);
    @Injectable()
    class Handler {
      @OnEvent(subject, { durable: 'eorel', delivery: 'exactly-once', dlq, retry: { maxAttempts: 5, initialDelayMs: 200, jitter: false } })
      async handle(_payload: unknown, ctx: EventContext) {
        attempts.push(ctx.attempt);
        if (ctx.attempt === 1) {
          // The store goes away while the handler runs, then the handler fails: the lease it
          // holds cannot be released.
          await hooks.client.jsm.streams.delete(`KV_${bucket}`);
          throw new Error('failed while the store was away');
        }
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [Handler]);
    await app.publisher.publish(subject, { n: 1 }, { msgId: 'rel-1' });
    await waitFor(() => app.logger.lines.some((l) => l.message.includes('could not release the idempotency record')), {
      timeoutMs: 10_000,
      message: 'release failure reported as a retry',
    });
    expect(attempts).toEqual([1]);
    await kvm.create(bucket, { history: 1, ttl: 24 * 3600 * 1000 });
    await waitFor(() => attempts.length === 2, { timeoutMs: 15_000, message: 'handled again once the store is back' });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eorel')).num_ack_pending === 0, { timeoutMs: 5_000, message: 'acked' });
    expect(attempts[1]).toBeGreaterThan(1);
    // Never dead-lettered: the dead-letter stream was not even needed.
    const dl = await hooks.client.jsm.streams.info(dlq.stream).catch(() => undefined);
    expect(dl?.state.messages ?? 0).toBe(0);
  });

  it('releases the lease of a message given up after its attempts ended without settling, so its redrive runs', async () => {
    const { stream, subject, bucket } = await setup('EOEXH');
    const dlqStream = uniqueName('DL');
    const dlq = { stream: dlqStream, subject: `${dlqStream}.letters` };
    const calls: Array<{ attempt: number; redriven: boolean }> = [];
    let unblock!: () => void;
    const hung = new Promise<void>((resolve) => (unblock = resolve));
    @Injectable()
    class Handler {
      // A short lease: the abandoned call's lease must run out before its message is given up.
      @OnEvent(subject, { durable: 'eoexh', delivery: 'exactly-once', dlq, retry: { maxAttempts: 1 }, ackWaitMs: 1_000 })
      async handle(_payload: unknown, ctx: EventContext) {
        calls.push({ attempt: ctx.attempt, redriven: ctx.header(IDEMPOTENCY_KEY_HEADER) !== undefined });
        if (calls.length === 1) await hung;
      }
    }
    try {
      // The first instance hangs in the handler and is stopped: it hands the message back still
      // holding the lease, as a crashed process would leave it.
      const first = await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket }, shutdownTimeoutMs: 200 }, [Handler]);
      await first.publisher.publish(subject, { n: 1 }, { msgId: 'exh-1' });
      await waitFor(() => calls.length === 1, { timeoutMs: 10_000, message: 'first attempt running' });
      await first.close();
      // The second instance sees attempt 2 of a one-attempt handler: dead-lettered unrun.
      const second = await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [Handler]);
      const service = second.inner.app.get(DeadLetterService);
      await waitFor(async () => (await service.list({ stream: dlqStream }).catch(() => [])).length === 1, {
        timeoutMs: 15_000,
        message: 'dead-lettered as exhausted',
      });
      expect(calls).toHaveLength(1);
      const [letter] = await service.list({ stream: dlqStream });
      await service.redrive(letter.seq, dlqStream);
      await waitFor(() => calls.length === 2, { timeoutMs: 10_000, message: 'redrive handled' });
      expect(calls[1].redriven).toBe(true);
      await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eoexh')).num_ack_pending === 0, { timeoutMs: 5_000, message: 'acked' });
    } finally {
      unblock();
    }
  });

  it('refuses a replay it cannot note in the idempotency bucket, and leaves the durable where it was', async () => {
    const { stream, subject, bucket } = await setup('EONOTE');
    const handled: number[] = [];
    @Injectable()
    class Handler {
      @OnEvent(subject, { durable: 'eonote', delivery: 'exactly-once' })
      async handle(payload: { n: number }) {
        handled.push(payload.n);
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [Handler]);
    for (const n of [1, 2]) await app.publisher.publish(subject, { n }, { msgId: `note-${n}` });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eonote')).ack_floor.stream_seq === 2, { timeoutMs: 10_000, message: 'acked' });
    // A sealed stream takes no more writes: the note cannot be written.
    const kvStream = `KV_${bucket}`;
    const sealed = { ...(await hooks.client.jsm.streams.info(kvStream)).config, sealed: true };
    await hooks.client.jsm.streams.update(kvStream, sealed);
    await expect(replayConsumer(app.connection, stream, 'eonote', { seq: 1 }, { recreate: true, idempotencyBucket: bucket })).rejects.toThrow(
      /Could not note the replay in idempotency bucket .*Nothing was replayed/,
    );
    const info = await hooks.client.jsm.consumers.info(stream, 'eonote');
    expect(info.ack_floor.stream_seq).toBe(2);
    expect(info.num_pending).toBe(0);
    expect(handled).toEqual([1, 2]);
  });

  it('marks the record done before the ack, so a delivery whose ack was lost skips the message', async () => {
    const { stream, subject, bucket } = await setup('EOUNCONF');
    const calls: number[] = [];
    @Injectable()
    class Handler {
      @OnEvent(subject, { durable: 'eounconf', delivery: 'exactly-once' })
      async handle(payload: { n: number }) {
        calls.push(payload.n);
        // The consumer goes away under the running handler: nothing can confirm its ack.
        if (calls.length === 1) await hooks.client.jsm.consumers.delete(stream, 'eounconf');
      }
    }
    let app = await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [Handler]);
    const sent = await app.publisher.publish(subject, { n: 1 }, { msgId: 'unconf-1' });
    const kv = await new Kvm(hooks.client.nc).open(bucket);
    await waitFor(async () => (await kv.get(IdempotencyStore.key(stream, 'eounconf', 'unconf-1')))?.json<{ s: string }>().s === 'd', {
      timeoutMs: 5_000,
      message: 'done mark written',
    });
    // The app creates the durable again from the first message: seq 1 comes back and is skipped.
    await app.close();
    app = await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [Handler]);
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eounconf')).ack_floor.stream_seq === sent.seq, {
      timeoutMs: 10_000,
      message: 'redelivery acked',
    });
    expect(calls).toEqual([1]);
  });
});

describe('exactly-once on one durable', () => {
  it('stores a repeated msgId once and handles it once', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'EO');
    const handled: number[] = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('e'), { durable: 'eo', delivery: 'exactly-once' })
      async handle(_o: Order, ctx: EventContext) {
        handled.push(ctx.sequence);
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    const first = await app.publisher.publish(subject('e'), { id: 'e', qty: 1 }, { msgId: 'biz-key-1' });
    const second = await app.publisher.publish(subject('e'), { id: 'e', qty: 1 }, { msgId: 'biz-key-1' });
    expect(second).toEqual({ stream, seq: first.seq, duplicate: true });
    await app.publisher.publish(subject('e'), { id: 'sentinel', qty: 1 });
    await waitFor(() => handled.length === 2, { timeoutMs: 10_000, message: 'two distinct messages handled' });
    expect(handled).toEqual([first.seq, first.seq + 1]);
    expect((await hooks.client.jsm.streams.info(stream)).state.messages).toBe(2);
  });

  it('re-runs a message whose holder died mid-handler on a second instance, and acks a later copy of it without running', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'EOREC');
    const kv = await new Kvm(hooks.client.nc).create('nestjs_jetstream_idempotency', { history: 1, ttl: 24 * 3600 * 1000 });
    const key = IdempotencyStore.key(stream, 'eorec', 'crashed-1');
    // The first instance: its own process, whose handler never finishes, killed mid-handler.
    const worker = await WorkerProcess.start({
      servers: testNatsUrl(),
      subject: subject('k'),
      durable: 'eorec',
      delivery: 'exactly-once',
      ackWaitMs: 1_000,
      concurrency: 1,
      shutdownTimeoutMs: 1_000,
      minHandlerMs: 600_000,
      maxHandlerMs: 600_000,
    });
    try {
      const tool = await hooks.apps.start({ servers: testNatsUrl() }, []);
      const crashed = await tool.publisher.publish(subject('k'), { id: 'crashed', qty: 1 }, { msgId: 'crashed-1' });
      await waitFor(() => worker.inFlight().includes('crashed'), { timeoutMs: 10_000, message: 'the first instance running it' });
      const held = (await kv.get(key))!.json<{ s: string; q: number; o: string }>();
      expect(held).toMatchObject({ s: 'p', q: crashed.seq });
      worker.signal('SIGKILL');
      await worker.exited;

      // The second instance: its own Nest app and connection on the same durable.
      const handled: Array<{ id: string; delivery: number }> = [];
      @Injectable()
      class Handler {
        @OnEvent(subject('k'), { durable: 'eorec', delivery: 'exactly-once', ackWaitMs: 1_000 })
        async handle(order: Order, ctx: EventContext) {
          handled.push({ id: order.id, delivery: ctx.deliveryCount });
        }
      }
      const second = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
      // Redelivered once the ack wait ran out; the dead holder's lease had lapsed, so it runs here.
      await waitFor(() => handled.length === 1, { timeoutMs: 15_000, message: 'the redelivery handled by the second instance' });
      expect(handled[0].id).toBe('crashed');
      expect(handled[0].delivery).toBeGreaterThanOrEqual(2);
      await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eorec')).num_ack_pending === 0, { timeoutMs: 10_000, message: 'acked' });
      // The record now names the same sequence, taken over by the second instance.
      const taken = (await kv.get(key))!.json<{ s: string; q: number; o: string }>();
      expect(taken).toMatchObject({ s: 'd', q: crashed.seq });
      expect(taken.o).not.toBe(held.o);
      // A later copy of it (a publish repeated with another msg-id) is a duplicate: acked, not run,
      // also by an instance that never saw it (a third app: only the record can tell it).
      await second.close();
      const third = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
      await third.publisher.publish(subject('k'), { id: 'crashed-copy', qty: 1 }, { msgId: 'copy-1', headers: { [IDEMPOTENCY_KEY_HEADER]: 'crashed-1' } });
      await third.publisher.publish(subject('k'), { id: 'fresh', qty: 1 }, { msgId: 'fresh-1' });
      await waitFor(() => handled.some((h) => h.id === 'fresh'), { timeoutMs: 10_000, message: 'sentinel handled' });
      await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eorec')).num_ack_pending === 0, { timeoutMs: 10_000, message: 'copy acked' });
      expect(handled.map((h) => h.id)).toEqual(['crashed', 'fresh']);
    } finally {
      await worker.dispose();
    }
  });

  it('keeps one record per message: the lease, then its done mark written over it', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'EOONE');
    const handled: string[] = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('w'), { durable: 'eoone', delivery: 'exactly-once', concurrency: 8 })
      async handle(order: Order) {
        handled.push(order.id);
      }
    }
    // A bucket of its own, so its stream's last sequence counts exactly this test's writes.
    const bucket = uniqueName('eo_one');
    const app = await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [Handler]);
    await app.publisher.publishBatch(Array.from({ length: 50 }, (_, i) => ({ subject: subject('w'), payload: { id: `w${i}`, qty: 1 }, options: { msgId: `w-${i}` } })));
    await waitFor(() => handled.length === 50, { timeoutMs: 10_000, message: '50 handled' });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eoone')).num_ack_pending === 0, { timeoutMs: 5_000, message: 'all 50 acked' });
    const kvState = (await hooks.client.jsm.streams.info(`KV_${bucket}`)).state;
    // Two writes a message (lease, done mark), history 1: one record each, every one done.
    expect(kvState.last_seq).toBe(100);
    expect(kvState.messages).toBe(50);
    const records = await new Kvm(hooks.client.nc).open(bucket);
    for (let i = 0; i < 50; i += 7) expect((await records.get(IdempotencyStore.key(stream, 'eoone', `w-${i}`)))?.json<{ s: string }>().s).toBe('d');
    expect(handled.sort()).toEqual(Array.from({ length: 50 }, (_, i) => `w${i}`).sort());
    await hooks.client.jsm.streams.delete(`KV_${bucket}`);
  });

  it('holds a copy that arrives while the first is running until the first ends; when the first fails, the copy carries the key', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'EOCOPY');
    const calls: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let failOnce = true;
    @Injectable()
    class Handler {
      @OnEvent(subject('c'), { durable: 'eocopy', delivery: 'exactly-once', concurrency: 4, retry: { maxAttempts: 3, initialDelayMs: 200, jitter: false } })
      async handle(order: Order) {
        calls.push(order.id);
        if (order.id === 'first') {
          await gate;
          if (failOnce) {
            failOnce = false;
            throw new Error('transient');
          }
        }
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    const key = { [IDEMPOTENCY_KEY_HEADER]: 'order-7' };
    await app.publisher.publish(subject('c'), { id: 'first', qty: 1 }, { msgId: 'c-1', headers: key });
    await waitFor(() => calls.includes('first'), { timeoutMs: 10_000, message: 'first running' });
    await app.publisher.publish(subject('c'), { id: 'copy', qty: 1 }, { msgId: 'c-2', headers: key });
    // The copy (consumer sequence 2) is delivered and held, neither run nor acked, while the
    // first (1) runs: acking it on sight would lose the key if the first's message went away.
    await waitFor(
      async () => {
        const info = await hooks.client.jsm.consumers.info(stream, 'eocopy');
        return info.delivered.consumer_seq === 2 && info.num_ack_pending === 2;
      },
      { timeoutMs: 10_000, message: 'copy delivered while first runs' },
    );
    expect(calls).toEqual(['first']);
    release();
    // The first fails and releases the key; whichever takes it next (the waiting copy, or the
    // first's retry) runs and succeeds, and the other then finds the key done and is acked unrun.
    await waitFor(() => calls.length === 2, { timeoutMs: 10_000, message: 'the key run again' });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eocopy')).num_ack_pending === 0, { timeoutMs: 10_000, message: 'all acked' });
    expect(calls).toHaveLength(2);
    expect(calls[0]).toBe('first');
    expect(['first', 'copy']).toContain(calls[1]);
  });

  it('skips handled messages when the consumer is replayed', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'EOREPLAY');
    const handled: string[] = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('r'), { durable: 'eoreplay', delivery: 'exactly-once' })
      async handle(order: Order) {
        handled.push(order.id);
      }
    }
    const settled = (ackFloor: number, message: string) =>
      waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eoreplay')).ack_floor.stream_seq === ackFloor, { timeoutMs: 10_000, message });
    let app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    for (const id of ['a', 'b', 'c']) await app.publisher.publish(subject('r'), { id, qty: 1 }, { msgId: `r-${id}` });
    await settled(3, 'three handled and acked');
    await app.close();
    // `nestjs-jetstream replay --recreate` with the app stopped, then the durable deleted again so
    // the app creates it with its own config: the procedure the CLI prints.
    const tool = await hooks.apps.start({ servers: testNatsUrl() }, []);
    expect((await replayConsumer(tool.connection, stream, 'eoreplay', { seq: 1 }, { recreate: true })).previousAckFloor).toBe(3);
    await hooks.client.jsm.consumers.delete(stream, 'eoreplay');
    app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('r'), { id: 'd', qty: 1 }, { msgId: 'r-d' });
    await settled(4, 'replayed messages skipped, the new one handled');
    expect(handled).toEqual(['a', 'b', 'c', 'd']);
    if (app.connection.serverAtLeast(2, 14, 0)) {
      // The CLI's in-place reset, while the app runs. Its `pending` is the server's count at the
      // reset, which the running app may already have pulled from: the skips below are the proof.
      const skipped: number[] = [];
      app.lifecycle.onHandled((e) => e.outcome === 'skipped' && skipped.push(e.sequence));
      const replay = await replayConsumer(app.connection, stream, 'eoreplay', { seq: 1 });
      expect(replay.pending).toBeLessThanOrEqual(4);
      await app.publisher.publish(subject('r'), { id: 'e', qty: 1 }, { msgId: 'r-e' });
      await settled(5, 'replayed messages skipped again, the new one handled');
      expect(handled).toEqual(['a', 'b', 'c', 'd', 'e']);
      expect(skipped.sort()).toEqual([1, 2, 3, 4]);
    }
  });

  it('skips handled messages when the durable starts over without a replay note: their done marks say they ran', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'EOLOST');
    const handled: string[] = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('s'), { durable: 'eolost', delivery: 'exactly-once', ackWaitMs: 1_000 })
      async handle(order: Order) {
        handled.push(order.id);
      }
    }
    let app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    for (const id of ['a', 'b']) await app.publisher.publish(subject('s'), { id, qty: 1 }, { msgId: `s-${id}` });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eolost')).ack_floor.stream_seq === 2, { timeoutMs: 10_000, message: 'acked' });
    await app.close();
    // As after a broker lost its consumer state: every message comes again. Each one's record
    // is a done mark written before its ack, so none is run twice, and none is lost.
    await hooks.client.jsm.consumers.delete(stream, 'eolost');
    app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('s'), { id: 'c', qty: 1 }, { msgId: 's-c' });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eolost')).ack_floor.stream_seq === 3, { timeoutMs: 10_000, message: 'all three acked' });
    expect(handled).toEqual(['a', 'b', 'c']);
  });

  it('waits for a live lease held by another instance instead of running twice', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'EOLEASE');
    const kv = await new Kvm(hooks.client.nc).create('nestjs_jetstream_idempotency', { history: 1, ttl: 24 * 3600 * 1000 });
    const key = IdempotencyStore.key(stream, 'eolease', 'busy-1');
    const calls: Array<{ instance: string; delivery: number; at: number }> = [];
    const stuck = deferred();
    const handler = (instance: string) => {
      @Injectable()
      class Handler {
        @OnEvent(subject('l'), { durable: 'eolease', delivery: 'exactly-once', ackWaitMs: 3_000 })
        async handle(_order: Order, ctx: EventContext) {
          calls.push({ instance, delivery: ctx.deliveryCount, at: Date.now() });
          if (instance === 'first') await stuck.promise;
        }
      }
      return Handler;
    };
    // Two instances, each a Nest app with its own connection, on the same durable. The first
    // stops while its call is still running: it hands the message back at once (a nak), and its
    // abandoned call keeps the lease until the lease runs out.
    const first = await hooks.apps.start({ servers: testNatsUrl(), shutdownTimeoutMs: 200 }, [handler('first')]);
    const published = await first.publisher.publish(subject('l'), { id: 'busy', qty: 1 }, { msgId: 'busy-1' });
    await waitFor(() => calls.length === 1, { timeoutMs: 10_000, message: 'the first instance running it' });
    const lease = (await kv.get(key))!.json<{ s: string; q: number; u: number }>();
    expect(lease).toMatchObject({ s: 'p', q: published.seq });
    await hooks.apps.start({ servers: testNatsUrl() }, [handler('second')]);
    await first.close();
    try {
      await waitFor(() => calls.length === 2, { timeoutMs: 15_000, message: 'the second instance running it once the lease ran out' });
      await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eolease')).num_ack_pending === 0, { timeoutMs: 10_000, message: 'acked' });
      // The redelivery the nak brought came while the lease was live: it waited in the second
      // instance (its ack wait extended) instead of going back and forth, so it used up one
      // delivery only, and the call came once the lease had ended (one clock: both apps are in
      // this process).
      expect(calls.map((c) => c.instance)).toEqual(['first', 'second']);
      expect(calls[1].delivery).toBe(2);
      expect(calls[1].at).toBeGreaterThanOrEqual(lease.u);
    } finally {
      stuck.resolve();
    }
  });
});
