import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { BatchContext, OnEvent } from '../../lib/index.js';
import { testNatsUrl, waitFor } from '../harness/index.js';
import { prefilledStream, WorkerProcess, workerScenario } from '../reliability/child-app.js';

const COUNT = 1_000;
const ACK_WAIT_MS = 3_000;

/**
 * A batch handler's process is SIGKILLed mid-batch: no ack, no nak for the batch in its call nor
 * for what it had pulled. A second instance on the same durable gets all of it once the ack wait
 * runs out; only messages of calls the kill cut short run twice.
 */
describe('batch handler: process SIGKILLed mid-batch', () => {
  const { apps, workers, client } = workerScenario();

  it('loses nothing: the cut batch comes back whole to another instance after the ack wait', async () => {
    const { stream, subject, durable, tally } = await prefilledStream(client(), 'bcrash', COUNT);
    const first = await WorkerProcess.start({
      servers: testNatsUrl(),
      subject,
      durable,
      ackWaitMs: ACK_WAIT_MS,
      concurrency: 2,
      shutdownTimeoutMs: 5_000,
      minHandlerMs: 50,
      maxHandlerMs: 150,
      batch: { maxMessages: 50, maxWaitMs: 50 },
    });
    workers.push(first);
    await waitFor(
      () => {
        const lines = first.lines();
        return lines.filter((l) => l.kind === 'done').length >= COUNT / 4 && first.inFlight(lines).length > 0;
      },
      { timeoutMs: 30_000, intervalMs: 5, message: () => `the first instance never got a quarter of the way mid-batch: ${first.lines().length} lines` },
    );
    first.signal('SIGKILL');
    const exit = await first.exited;
    expect(exit.signal).toBe('SIGKILL');
    const firstLines = first.lines();
    const cut = first.inFlight(firstLines);
    expect(cut.length).toBeGreaterThan(0);
    const doneByFirst = new Set(firstLines.filter((l) => l.kind === 'done').map((l) => l.id));
    for (const id of doneByFirst) tally.handle(id);

    const second = new Map<string, number>();
    @Injectable()
    class SecondInstance {
      @OnEvent(subject, { durable, concurrency: 2, ackWaitMs: ACK_WAIT_MS, batch: { maxMessages: 50, maxWaitMs: 50 } })
      async handle(payloads: Array<{ id: string }>, batch: BatchContext<{ id: string }>) {
        payloads.forEach((p, i) => {
          if (!second.has(p.id)) second.set(p.id, batch.items[i].context.deliveryCount);
          tally.handle(p.id);
        });
      }
    }
    await apps.start({ servers: testNatsUrl() }, [SecondInstance]);
    await waitFor(() => tally.complete(), { timeoutMs: 30_000, message: () => `the second instance did not pick everything up: ${tally.describe()}` });
    await waitFor(
      async () => {
        const info = await client().jsm.consumers.info(stream, durable);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      { timeoutMs: 30_000, message: () => `consumer never settled: ${tally.describe()}` },
    );
    expect(tally.lost()).toEqual([]);
    expect(tally.unexpected()).toEqual([]);
    // The batch in the call when the process died came back as redeliveries.
    for (const id of cut) expect(second.get(id)).toBeGreaterThanOrEqual(2);
    // Handled twice only where the first instance finished the call and its acks died with it.
    const twice = [...second.keys()].filter((id) => doneByFirst.has(id));
    expect(twice.length).toBeLessThanOrEqual(2 * 50);
    console.log(`batch crash: ${cut.length} cut mid-call, ${twice.length} done by the killed instance and handled again, 0 lost of ${COUNT}`);
  });
});
