import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { OnEvent } from '../../lib/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { AppTracker, createStream, deleteCreatedStreams, openClient, type RawClient } from '../integration/kit.js';
import { recordScenario, scale } from './report.js';

/**
 * Handlers slower than the publish rate: the backlog must wait in the stream, not in the
 * process. The server's max_ack_pending caps what is handed out, the client's prefetch caps
 * what is buffered, so memory stays flat however far behind the consumer falls, and nothing
 * is lost or handled twice.
 */
const apps = new AppTracker();
let client: RawClient;

beforeAll(async () => {
  client = await openClient(testNatsUrl());
});
afterAll(async () => {
  await apps.closeAll();
  await deleteCreatedStreams(client.jsm);
  await client.close();
});

describe('slow consumer', () => {
  it('keeps ack pending within maxAckPending and memory flat while the backlog drains, losing nothing', async () => {
    const total = scale(2_000, 20_000);
    const concurrency = 4;
    const maxAckPending = 24;
    const handlerMs = 10;
    const stream = uniqueName('SLOW');
    await createStream(client.jsm, stream, [`${stream}.>`]);
    const subject = `${stream}.jobs`;

    const seen = new Map<number, number>();
    let inFlight = 0;
    let maxInFlight = 0;
    @Injectable()
    class SlowJobs {
      // prefetch well above maxAckPending: the server's limit, not the client's buffer, binds.
      @OnEvent(subject, { durable: 'slow', concurrency, prefetch: 256, maxAckPending })
      async handle(job: { i: number; pad: string }): Promise<void> {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((resolve) => setTimeout(resolve, handlerMs));
        seen.set(job.i, (seen.get(job.i) ?? 0) + 1);
        inFlight--;
      }
    }
    const app = await apps.start({ servers: testNatsUrl() }, [SlowJobs]);
    const info = await client.jsm.consumers.info(stream, 'slow');
    expect(info.config.max_ack_pending).toBe(maxAckPending);

    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const samples: Array<{ ackPending: number; pending: number; heap: number }> = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const ci = await client.jsm.consumers.info(stream, 'slow');
        samples.push({ ackPending: ci.num_ack_pending, pending: ci.num_pending, heap: process.memoryUsage().heapUsed });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();

    // Published far faster than 4 handlers at 10 ms each can take them (~400/s).
    const pad = 'p'.repeat(1_024);
    const publishStart = performance.now();
    const results = await app.publisher.publishBatch(Array.from({ length: total }, (_, i) => ({ subject, payload: { i, pad } })));
    const publishMs = performance.now() - publishStart;
    expect(results.filter((r) => !r.ok)).toEqual([]);

    await waitFor(() => seen.size === total, {
      timeoutMs: total * 5 + 20_000,
      intervalMs: 100,
      message: `all ${total} jobs handled`,
    });
    const drainMs = performance.now() - publishStart;
    sampling = false;
    await sampler;
    await waitFor(async () => (await client.jsm.consumers.info(stream, 'slow')).num_ack_pending === 0, {
      timeoutMs: 5_000,
      message: 'last acks reached the server',
    });
    const final = await client.jsm.consumers.info(stream, 'slow');

    const maxAckPendingSeen = Math.max(...samples.map((s) => s.ackPending));
    const maxBacklog = Math.max(...samples.map((s) => s.pending));
    const heapGrowthMb = (Math.max(...samples.map((s) => s.heap)) - heapBefore) / 1024 / 1024;
    const duplicates = [...seen.values()].reduce((n, c) => n + c - 1, 0);
    const lost = total - seen.size;

    // The publisher really was faster: a backlog built up in the stream.
    expect(publishMs).toBeLessThan(drainMs);
    expect(maxBacklog).toBeGreaterThan(total / 4);
    // The server never handed out more than the limit, and the limit was what held the rest back.
    expect(samples.length).toBeGreaterThan(10);
    expect(maxAckPendingSeen).toBeLessThanOrEqual(maxAckPending);
    expect(maxAckPendingSeen).toBeGreaterThanOrEqual(maxAckPending - concurrency);
    expect(maxInFlight).toBeLessThanOrEqual(concurrency);
    // The backlog (total × 1 KB) stays on the server; the process holds at most the ack-pending window.
    expect(heapGrowthMb).toBeLessThan(48);
    expect(lost).toBe(0);
    expect(duplicates).toBe(0);
    expect(final.num_redelivered).toBe(0);
    expect(final.num_pending).toBe(0);

    recordScenario({
      scenario: `slow consumer: ${total} msgs, ${concurrency}×${handlerMs} ms handler, maxAckPending ${maxAckPending}`,
      published: total,
      handled: seen.size,
      lost,
      duplicates,
      outcome: `drained in ${Math.round(drainMs)} ms (published in ${Math.round(publishMs)} ms); ack pending max ${maxAckPendingSeen}/${maxAckPending}, backlog max ${maxBacklog}, heap +${heapGrowthMb.toFixed(1)} MB`,
    });
  });
});
