import 'reflect-metadata';
import { Kvm } from '@nats-io/kv';
import { DeadLetterService, IDEMPOTENCY_KEY_HEADER } from '../../lib/index.js';
import { deferred, testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { WorkerProcess, type WorkerConfig } from '../reliability/child-app.js';
import { createStream, handlerClass, sharedServerHooks } from './kit.js';
import { IdempotencyStore } from '../../lib/delivery/idempotency-store.js';

/**
 * The exactly-once lease, one hole each, driven for real: a handler outliving its lease, a
 * holder whose clock is off, waiting on a live lease, a lost compare-and-set race, a holder
 * whose message was purged, an idempotency bucket that is gone. Holders that must die or pause
 * are processes of their own (SIGKILL, SIGSTOP), never a record written by hand.
 */
const hooks = sharedServerHooks();
const buckets: string[] = [];
const workers: WorkerProcess[] = [];
const ACK_WAIT_MS = 1_000;

async function setup(prefix: string): Promise<{ stream: string; subject: string; bucket: string; dlq: { stream: string; subject: string } }> {
  const stream = uniqueName(prefix);
  await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
  const bucket = uniqueName('eol');
  buckets.push(bucket);
  const dl = uniqueName('DL');
  return { stream, subject: `${stream}.x`, bucket, dlq: { stream: dl, subject: `${dl}.letters` } };
}

async function worker(config: Omit<WorkerConfig, 'servers' | 'concurrency' | 'shutdownTimeoutMs' | 'ackWaitMs' | 'delivery'>): Promise<WorkerProcess> {
  const w = await WorkerProcess.start({ servers: testNatsUrl(), concurrency: 1, shutdownTimeoutMs: 1_000, ackWaitMs: ACK_WAIT_MS, delivery: 'exactly-once', ...config });
  workers.push(w);
  return w;
}

async function settled(stream: string, durable: string, message: string): Promise<void> {
  await waitFor(
    async () => {
      const info = await hooks.client.jsm.consumers.info(stream, durable);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    },
    { timeoutMs: 20_000, message },
  );
}

/** Returns once a call begun at `startedAt` has outlived the lease it took (1.5 lease lengths). */
async function outlivedLease(startedAt: number): Promise<void> {
  await waitFor(() => Date.now() - startedAt > 1.5 * ACK_WAIT_MS, { timeoutMs: 10_000, message: 'the call to outlive its lease' });
}

/** Keeps a handler call running until three lease lengths after `since()` is set. */
async function outlive(since: () => number | undefined): Promise<void> {
  await waitFor(() => {
    const at = since();
    return at !== undefined && Date.now() - at > 3 * ACK_WAIT_MS;
  }, { timeoutMs: 30_000, message: 'the test to note the redelivery' });
}

afterEach(async () => {
  await Promise.allSettled(workers.splice(0).map((w) => w.dispose()));
  for (const bucket of buckets.splice(0)) await hooks.client.jsm.streams.delete(`KV_${bucket}`).catch(() => undefined);
});

describe('exactly-once leases', () => {
  it('renews the lease while a handler outlives it: a redelivery of the running message (its durable recreated) waits on another instance instead of running it again', async () => {
    const { stream, subject, bucket } = await setup('EORENEW');
    const calls: string[] = [];
    let redeliveredAt: number | undefined;
    let startedAt = 0;
    const make = (instance: string) =>
      handlerClass(`Renew${instance}`, subject, { durable: 'eorenew', delivery: 'exactly-once', ackWaitMs: ACK_WAIT_MS }, async () => {
        calls.push(instance);
        startedAt = Date.now();
        // Runs on until three lease lengths after the redelivery came.
        if (calls.length === 1) await outlive(() => redeliveredAt);
      });
    const a = await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [make('a')]);
    await a.publisher.publish(subject, { id: 'long' }, { msgId: 'long-1' });
    await waitFor(() => calls.length === 1, { timeoutMs: 10_000, message: 'the first call running' });
    await outlivedLease(startedAt);
    // The running call's ack wait is kept alive, so only a server that forgot the delivery
    // hands it out again (a broker restart that lost consumer state): the durable is recreated,
    // here by the second instance starting, once the call has outlived its first lease.
    await hooks.client.jsm.consumers.delete(stream, 'eorenew');
    await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [make('b')]);
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eorenew')).delivered.stream_seq >= 1, {
      timeoutMs: 10_000,
      message: 'the running message delivered again',
    });
    redeliveredAt = Date.now();
    await settled(stream, 'eorenew', 'acked');
    expect(calls).toEqual(['a']);
  });

  it('judges a lapsed lease by the server, not by the holder\'s clock: a dead holder whose clock ran 10 minutes ahead is taken over', async () => {
    const { stream, subject, bucket } = await setup('EOCLOCK');
    const a = await worker({ subject, durable: 'eoclock', bucket, clockSkewMs: 10 * 60_000, minHandlerMs: 600_000, maxHandlerMs: 600_000 });
    await hooks.client.js.publish(subject, JSON.stringify({ id: 'skewed' }), { msgID: 'skewed-1' });
    await waitFor(() => a.inFlight().includes('skewed'), { timeoutMs: 10_000, message: 'the skewed holder running it' });
    a.signal('SIGKILL');
    await a.exited;
    const handled: string[] = [];
    await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [
      handlerClass('Clock', subject, { durable: 'eoclock', delivery: 'exactly-once', ackWaitMs: ACK_WAIT_MS }, (p) => void handled.push((p as { id: string }).id)),
    ]);
    // Its lease said "until 10 minutes from now" by its own clock; the server's says it lapsed.
    await waitFor(() => handled.length === 1, { timeoutMs: 20_000, message: 'the dead holder\'s message taken over' });
    await settled(stream, 'eoclock', 'acked');
    expect(handled).toEqual(['skewed']);
    // 2.11+ expires leases by per-message TTL (the bucket allows it); 2.10 by the entry's server timestamp.
    const [major, minor] = hooks.client.nc.info!.version.split('.').map(Number);
    const ttl = major > 2 || (major === 2 && minor >= 11);
    expect((await hooks.client.jsm.streams.info(`KV_${bucket}`)).config.allow_msg_ttl === true).toBe(ttl);
  });

  it('waits on a live lease without using up attempts: a holder running past maxAttempts ack waits is not dead-lettered under it', async () => {
    const { stream, subject, bucket, dlq } = await setup('EOBUDGET');
    const calls: number[] = [];
    let redeliveredAt: number | undefined;
    let startedAt = 0;
    const handler = handlerClass('Budget', subject, { durable: 'eobudget', delivery: 'exactly-once', ackWaitMs: ACK_WAIT_MS, dlq, concurrency: 2, retry: { maxAttempts: 2 } }, async (_p, ctx) => {
      calls.push(ctx.deliveryCount);
      startedAt = Date.now();
      if (calls.length === 1) await outlive(() => redeliveredAt);
    });
    const app = await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [handler]);
    await app.publisher.publish(subject, { id: 'slow' }, { msgId: 'slow-1' });
    await waitFor(() => calls.length === 1, { timeoutMs: 10_000, message: 'the first call running' });
    await outlivedLease(startedAt);
    // The durable is recreated under the running call (as by a broker that lost its consumer
    // state), by a second instance: it gets the message while the first still runs it, and
    // waits 4 lease lengths on it with a budget of 2 attempts.
    await hooks.client.jsm.consumers.delete(stream, 'eobudget');
    await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [handler]);
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'eobudget')).delivered.stream_seq >= 1, {
      timeoutMs: 10_000,
      message: 'the running message delivered again',
    });
    redeliveredAt = Date.now();
    await settled(stream, 'eobudget', 'acked');
    expect(calls).toEqual([1]);
    const dead = await hooks.client.jsm.streams.info(dlq.stream).catch(() => undefined);
    expect(dead?.state.messages ?? 0).toBe(0);
  });

  it('never writes over a lease it lost: a paused holder that wakes and fails leaves the new holder\'s record, so a later copy stays a duplicate', async () => {
    const { stream, subject, bucket } = await setup('EORACE');
    const a = await worker({ subject, durable: 'eorace', bucket, failFirstDelivery: true, minHandlerMs: 2_500, maxHandlerMs: 2_500 });
    const key = { [IDEMPOTENCY_KEY_HEADER]: 'race-key' };
    const tool = await hooks.apps.start({ servers: testNatsUrl() }, []);
    await tool.publisher.publish(subject, { id: 'race' }, { msgId: 'race-1', headers: key });
    await waitFor(() => a.inFlight().includes('race'), { timeoutMs: 10_000, message: 'the first holder running it' });
    // A pause longer than the lease (a frozen VM, a long GC): its lease lapses, the message goes on.
    a.signal('SIGSTOP');
    const handled: string[] = [];
    const gate = deferred();
    const running = deferred();
    const b = await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [
      handlerClass('Race', subject, { durable: 'eorace', delivery: 'exactly-once', ackWaitMs: ACK_WAIT_MS }, async (p) => {
        handled.push((p as { id: string }).id);
        running.resolve();
        if (handled.length === 1) await gate.promise;
      }),
    ]);
    await waitFor(() => handled.length === 1, { timeoutMs: 20_000, message: 'the second instance took the lapsed lease over' });
    const kv = await new Kvm(hooks.client.nc).open(bucket);
    const recordKey = IdempotencyStore.key(stream, 'eorace', 'race-key');
    // The paused holder wakes, its handler fails, and it gives "its" lease up.
    a.signal('SIGCONT');
    await waitFor(() => a.lines().some((l) => l.kind === 'fail'), { timeoutMs: 10_000, message: 'the woken holder failed' });
    // It then hands its message back (after releasing, or finding it no longer holds the lease).
    await waitFor(() => a.logs().includes('as configured; redelivery in'), {
      timeoutMs: 10_000,
      message: () => `the woken holder gave its message back:\n${a.logs()}`,
    });
    gate.resolve();
    await settled(stream, 'eorace', 'all settled');
    expect((await kv.get(recordKey))?.json<{ s: string }>().s).toBe('d');
    // A later copy of the key is a duplicate: acked, not run.
    await b.publisher.publish(subject, { id: 'race-copy' }, { msgId: 'race-2', headers: key });
    await b.publisher.publish(subject, { id: 'sentinel' }, { msgId: 'sentinel-1' });
    await waitFor(() => handled.includes('sentinel'), { timeoutMs: 10_000, message: 'sentinel handled' });
    await settled(stream, 'eorace', 'copy settled');
    expect(handled).toEqual(['race', 'sentinel']);
    expect(a.lines().filter((l) => l.kind === 'done')).toEqual([]);
  });

  it('runs a copy whose key is held by a dead holder whose message was purged, instead of acking it unrun', async () => {
    const { stream, subject, bucket } = await setup('EOPURGE');
    const a = await worker({ subject, durable: 'eopurge', bucket, minHandlerMs: 600_000, maxHandlerMs: 600_000 });
    const key = { [IDEMPOTENCY_KEY_HEADER]: 'purged-key' };
    const tool = await hooks.apps.start({ servers: testNatsUrl() }, []);
    const held = await tool.publisher.publish(subject, { id: 'holder' }, { msgId: 'holder-1', headers: key });
    await waitFor(() => a.inFlight().includes('holder'), { timeoutMs: 10_000, message: 'the holder running it' });
    a.signal('SIGKILL');
    await a.exited;
    await hooks.client.jsm.streams.deleteMessage(stream, held.seq);
    await tool.publisher.publish(subject, { id: 'copy' }, { msgId: 'copy-1', headers: key });
    const handled: string[] = [];
    await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [
      handlerClass('Purge', subject, { durable: 'eopurge', delivery: 'exactly-once', ackWaitMs: ACK_WAIT_MS }, (p) => void handled.push((p as { id: string }).id)),
    ]);
    await waitFor(() => handled.length === 1, { timeoutMs: 20_000, message: 'the copy run once the dead holder\'s lease lapsed' });
    await settled(stream, 'eopurge', 'acked');
    expect(handled).toEqual(['copy']);
  });

  it('dead-letters a message as idempotency-unavailable when the bucket stays gone, instead of stranding it at max_deliver', async () => {
    const { stream, subject, bucket, dlq } = await setup('EOGONE');
    let calls = 0;
    const app = await hooks.apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [
      handlerClass('Gone', subject, { durable: 'eogone', delivery: 'exactly-once', dlq, retry: { maxAttempts: 2, initialDelayMs: 100, jitter: false } }, () => void calls++),
    ]);
    await hooks.client.jsm.streams.delete(`KV_${bucket}`);
    await app.publisher.publish(subject, { id: 'stranded' }, { msgId: 'gone-1' });
    const service = app.inner.app.get(DeadLetterService);
    await waitFor(async () => (await service.list({ stream: dlq.stream }).catch(() => [])).length === 1, {
      timeoutMs: 20_000,
      message: 'dead-lettered',
    });
    const [letter] = await service.list({ stream: dlq.stream });
    expect(letter.reason).toBe('idempotency-unavailable');
    await settled(stream, 'eogone', 'terminated');
    expect(calls).toBe(0);
    expect(app.logger.lines.some((l) => l.message.includes('reason idempotency-unavailable'))).toBe(true);
  });
});
