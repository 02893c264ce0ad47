import 'reflect-metadata';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { createStream, handlerClass, type JetStreamTestApp, sharedServerHooks } from './kit.js';

const TEST_TIMEOUT_MS = 60_000;

/**
 * Scaling out: every instance of a service runs the same @OnEvent handler on the same durable,
 * and the server shares the messages between them. Each instance here is a separate Nest app
 * with its own NATS connection, exactly like two processes.
 */
describe('scaling out on one durable (real nats-server)', () => {
  const shared = sharedServerHooks();
  const apps = shared.apps;

  /** Payload ids handled, per instance label. */
  function recorder(labels: string[]): Map<string, number[]> {
    return new Map(labels.map((l) => [l, [] as number[]]));
  }

  it('shares 1,000 batch-published messages between two instances, each handled exactly once', async () => {
    const stream = uniqueName('SCALE');
    const subject = `${stream}.orders.created`;
    const durable = uniqueName('workers');
    await createStream(shared.client.jsm, stream, [`${stream}.>`]);

    const handled = recorder(['a', 'b']);
    const deliveryCounts: number[] = [];
    const consumers = new Set<string>();
    const handlerFor = (label: string) =>
      handlerClass(`Worker_${label}`, subject, { durable, concurrency: 8, prefetch: 8 }, async (payload, ctx) => {
        handled.get(label)!.push((payload as { id: number }).id);
        deliveryCounts.push(ctx.deliveryCount);
        consumers.add(ctx.consumer);
        // A little async work, so one instance cannot drain the stream before the other pulls.
        await new Promise((resolve) => setTimeout(resolve, 2));
      });

    const a: JetStreamTestApp = await apps.start({ servers: testNatsUrl() }, [handlerFor('a')]);
    const b: JetStreamTestApp = await apps.start({ servers: testNatsUrl() }, [handlerFor('b')]);
    expect(a.connection.nc).not.toBe(b.connection.nc);

    // Published only once both instances have their pulls waiting on the server.
    const total = 1_000;
    const results = await a.publisher.publishBatch(
      Array.from({ length: total }, (_, id) => ({ subject, payload: { id } })),
    );
    expect(results.filter((r) => !r.ok)).toEqual([]);

    const count = () => handled.get('a')!.length + handled.get('b')!.length;
    await waitFor(() => count() >= total, {
      timeoutMs: 30_000,
      message: () => `expected ${total} handled messages, got ${count()}`,
    });

    // Nothing is left to deliver, pending ack or waiting for redelivery: no further call can come.
    await waitFor(
      async () => {
        const info = await shared.client.jsm.consumers.info(stream, durable);
        return info.num_ack_pending === 0 && info.num_pending === 0;
      },
      { timeoutMs: 10_000, message: 'consumer still has pending or unacked messages' },
    );
    const info = await shared.client.jsm.consumers.info(stream, durable);
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
    expect(info.ack_floor.stream_seq).toBe(total);
    // One delivery per message in all: no redelivery anywhere.
    expect(info.delivered.consumer_seq).toBe(total);

    const fromA = handled.get('a')!;
    const fromB = handled.get('b')!;
    const all = [...fromA, ...fromB];
    expect(all).toHaveLength(total);
    expect(new Set(all).size).toBe(total);
    expect([...all].sort((x, y) => x - y)).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(fromA.length).toBeGreaterThan(0);
    expect(fromB.length).toBeGreaterThan(0);
    expect(deliveryCounts.every((c) => c === 1)).toBe(true);
    expect([...consumers]).toEqual([durable]);
  }, TEST_TIMEOUT_MS);

  // Before the ConsumerRunner.stop() fix (see lifecycle.spec.ts, "under load, hands back every
  // message..."), messages in transit to the stopping instance were dropped by its client and
  // reached b only after the 30 s ack wait: this test failed on most runs (3 in 4).
  it('hands the rest to the remaining instance at once when one instance shuts down mid-stream, losing and repeating nothing', async () => {
    const stream = uniqueName('SCALE');
    const subject = `${stream}.jobs`;
    const durable = uniqueName('workers');
    await createStream(shared.client.jsm, stream, [`${stream}.>`]);

    const handled = recorder(['a', 'b']);
    const handlerFor = (label: string) =>
      handlerClass(`Job_${label}`, subject, { durable, concurrency: 4, prefetch: 8 }, async (payload) => {
        handled.get(label)!.push((payload as { id: number }).id);
        await new Promise((resolve) => setTimeout(resolve, 2));
      });

    const a = await apps.start({ servers: testNatsUrl() }, [handlerFor('a')]);
    await apps.start({ servers: testNatsUrl() }, [handlerFor('b')]);

    const total = 300;
    const results = await a.publisher.publishBatch(Array.from({ length: total }, (_, id) => ({ subject, payload: { id } })));
    expect(results.every((r) => r.ok)).toBe(true);

    // Stop instance a while it is busy: in-flight calls finish and ack, buffered ones go back.
    await waitFor(() => handled.get('a')!.length >= 20, { timeoutMs: 10_000, message: 'instance a never got going' });
    await a.close();
    const handledByA = handled.get('a')!.length;

    // Well before the 30 s ack wait: what a had not started was handed back, not abandoned.
    const count = () => handled.get('a')!.length + handled.get('b')!.length;
    await waitFor(() => count() >= total, {
      timeoutMs: 10_000,
      message: () => `expected ${total} handled messages within 10 s of a's shutdown, got ${count()} (a ${handled.get('a')!.length}, b ${handled.get('b')!.length})`,
    });
    await waitFor(
      async () => {
        const info = await shared.client.jsm.consumers.info(stream, durable);
        return info.num_ack_pending === 0 && info.num_pending === 0;
      },
      { timeoutMs: 10_000, message: 'consumer still has pending or unacked messages' },
    );

    // a did nothing after close resolved.
    expect(handled.get('a')!.length).toBe(handledByA);
    const all = [...handled.get('a')!, ...handled.get('b')!];
    expect(all).toHaveLength(total);
    expect(new Set(all).size).toBe(total);
    const info = await shared.client.jsm.consumers.info(stream, durable);
    expect(info.ack_floor.stream_seq).toBe(total);
  }, TEST_TIMEOUT_MS);
});
