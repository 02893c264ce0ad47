import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { errors as natsErrors } from '@nats-io/transport-node';
import type { ConsumerInfo } from '@nats-io/jetstream';
import { OnEvent } from '../../lib/index.js';
import { testNatsUrl, uniqueName } from '../harness/index.js';
import { AppTracker, createStream, deleteCreatedStreams, openClient, type RawClient } from '../integration/kit.js';
import { retainedBytes } from './heap.js';
import { scale } from './report.js';
import { Tally } from './tally.js';

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

const total = scale(2_000, 20_000);
// The drain takes ~total / 400 s on a quiet machine; the wait for it below ends at this deadline.
const DRAIN_DEADLINE_MS = total * 10 + 30_000;

describe('slow consumer', () => {
  it('keeps ack pending within maxAckPending and memory flat while the backlog drains, losing nothing', async () => {
    const concurrency = 4;
    const maxAckPending = 24;
    const handlerMs = 10;
    // A backlog of 62 MB at every scale (32 KB a message by default), far above what the
    // ack-pending window (24 messages) may hold, so a process that buffered the backlog could not
    // pass the memory bound below, while the few MB the rest of a jest worker moves about can.
    const padBytes = Math.floor((32 * 1_024 * 2_000) / total);
    const stream = uniqueName('SLOW');
    await createStream(client.jsm, stream, [`${stream}.>`]);
    const subject = `${stream}.jobs`;

    const tally = new Tally();
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
        tally.handle(String(job.i));
        inFlight--;
      }
    }
    const app = await apps.start({ servers: testNatsUrl() }, [SlowJobs]);
    // On a loaded 2-core machine the server can leave one info request unanswered past the
    // client's timeout while it works through the backlog; that is not what this test measures,
    // so such a request is asked again (the drain deadline below still bounds the whole wait).
    const slowInfo = async (): Promise<ConsumerInfo> => {
      for (;;) {
        try {
          return await client.jsm.consumers.info(stream, 'slow');
        } catch (err) {
          if (!(err instanceof natsErrors.TimeoutError)) throw err;
        }
      }
    };
    const info = await client.jsm.consumers.info(stream, 'slow');
    expect(info.config.max_ack_pending).toBe(maxAckPending);

    const retainedBefore = retainedBytes();
    const samples: Array<{ ackPending: number; pending: number }> = [];
    const retained: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const ci = await slowInfo();
        samples.push({ ackPending: ci.num_ack_pending, pending: ci.num_pending });
        // A full collection every tenth sample: what the process holds, not what it has yet to collect.
        if (samples.length % 10 === 0) retained.push(retainedBytes());
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();

    // Published far faster than 4 handlers at 10 ms each can take them (~400/s).
    const pad = 'p'.repeat(padBytes);
    const publishStart = performance.now();
    const results = await app.publisher.publishBatch(Array.from({ length: total }, (_, i) => ({ subject, payload: { i, pad } })));
    const publishMs = performance.now() - publishStart;
    const handledWhenPublished = tally.handledCount;
    results.forEach((r, i) => r.ok && tally.confirmPublished(String(i)));
    expect(results.filter((r) => !r.ok)).toEqual([]);
    // Right after the publish, while the backlog is at its largest.
    retained.push(retainedBytes());

    // Done when the server says so (nothing left to deliver, nothing unacked), not when our count
    // is complete: a message acked without its handler finishing shows up as lost below.
    const deadline = Date.now() + DRAIN_DEADLINE_MS;
    let final = await slowInfo();
    while ((final.num_pending > 0 || final.num_ack_pending > 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      final = await slowInfo();
    }
    const drainMs = performance.now() - publishStart;
    sampling = false;
    await sampler;

    const maxAckPendingSeen = Math.max(...samples.map((s) => s.ackPending));
    const maxBacklog = Math.max(...samples.map((s) => s.pending));
    const backlogBytes = total * padBytes;
    const retainedGrowth = Math.max(...retained) - retainedBefore;
    const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

    // The consumer settled everything before the deadline.
    expect({ pending: final.num_pending, ackPending: final.num_ack_pending }).toEqual({ pending: 0, ackPending: 0 });
    // The publisher really was faster: most messages were still waiting when the publish returned,
    // and a backlog built up in the stream.
    expect(handledWhenPublished).toBeLessThan(total / 2);
    expect(maxBacklog).toBeGreaterThan(total / 4);
    // The server never handed out more than the limit, and the limit was what held the rest back.
    expect(samples.length).toBeGreaterThan(10);
    expect(maxAckPendingSeen).toBeLessThanOrEqual(maxAckPending);
    expect(maxAckPendingSeen).toBeGreaterThanOrEqual(maxAckPending - concurrency);
    expect(maxInFlight).toBeLessThanOrEqual(concurrency);
    // The backlog stays on the server: after full collections the process never held more than a
    // quarter of it. The ack-pending window is 1/80 of it at the default scale; the rest of what
    // is retained is the test's own bookkeeping (up to 10 MB seen under load).
    expect(retained.length).toBeGreaterThan(1);
    expect(retainedGrowth).toBeLessThan(backlogBytes / 4);
    expect(tally.describe()).toBe(`published ${total}, handled ${total}, lost 0, duplicates 0`);
    expect(final.num_redelivered).toBe(0);

    tally.record(
      `slow consumer: ${total} msgs of ${Math.round(padBytes / 1_024)} KB, ${concurrency}×${handlerMs} ms handler, maxAckPending ${maxAckPending}`,
      `ack pending never above ${maxAckPending}, backlog above ${total / 4}, retained memory below 1/4 of the ${mb(backlogBytes)} MB backlog`,
      {
        measured: `drained in ${Math.round(drainMs)} ms (published in ${Math.round(publishMs)} ms, ${handledWhenPublished} handled by then); ack pending max ${maxAckPendingSeen}, backlog max ${maxBacklog}; retained +${mb(retainedGrowth)} MB after full GCs`,
      },
    );
  }, DRAIN_DEADLINE_MS + 60_000);
});
