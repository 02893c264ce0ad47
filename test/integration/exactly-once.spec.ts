import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { Kvm } from '@nats-io/kv';
import { DeadLetterService, IDEMPOTENCY_KEY_HEADER, OnEvent, type EventContext } from '../../lib/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { createStream, sharedServerHooks } from './kit.js';
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
      @OnEvent(subject, { durable: 'eoexh', delivery: 'exactly-once', dlq, retry: { maxAttempts: 1 } })
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

  it('marks the record done when the ack cannot be confirmed, so a later delivery skips the message', async () => {
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
    await waitFor(() => app.logger.lines.some((l) => l.message.includes('recording its completion instead')), {
      timeoutMs: 10_000,
      message: 'unconfirmed ack reported',
    });
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
