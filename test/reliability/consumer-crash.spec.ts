import 'reflect-metadata';
import { testNatsUrl, waitFor } from '../harness/index.js';
import { handlerClass } from '../integration/kit.js';
import { prefilledStream, WorkerProcess, workerScenario, type WorkerConfig } from './child-app.js';
import { scale } from './report.js';

const COUNT = scale(600, 10_000);
const TEST_TIMEOUT_MS = scale(90_000, 600_000);
const ACK_WAIT_MS = 3_000;

/**
 * A service instance dies mid-handler (SIGKILL: no shutdown hook, no nak, no ack). The messages
 * it held, the one in its handler included, are still owed: a second instance on the same
 * durable must get them once their ack wait runs out.
 */
describe('reliability: consumer crash (app process SIGKILLed mid-handler)', () => {
  const { apps, workers, client } = workerScenario();

  it('a second instance on the same durable gets the crashed instance\'s messages after the ack wait; nothing is lost', async () => {
    const { stream, subject, durable, tally } = await prefilledStream(client(), 'ccrash', COUNT);

    const config: WorkerConfig = {
      servers: testNatsUrl(),
      subject,
      durable,
      ackWaitMs: ACK_WAIT_MS,
      concurrency: 4,
      shutdownTimeoutMs: 5_000,
      minHandlerMs: 5,
      maxHandlerMs: 40,
    };
    const first = await WorkerProcess.start(config);
    workers.push(first);
    // Mid-stream and mid-handler: a third done, and at least one call begun but not finished.
    await waitFor(
      () => {
        const lines = first.lines();
        return lines.filter((l) => l.kind === 'done').length >= COUNT / 3 && first.inFlight(lines).length > 0;
      },
      { timeoutMs: 30_000, intervalMs: 5, message: () => `the first instance never got a third of the way: ${first.lines().length} lines` },
    );
    first.signal('SIGKILL');
    const exit = await first.exited;
    expect(exit.signal).toBe('SIGKILL');
    const firstLines = first.lines();
    const startedByFirst = new Set(firstLines.filter((l) => l.kind === 'start').map((l) => l.id));
    const cutMidHandler = first.inFlight(firstLines);
    expect(cutMidHandler.length).toBeGreaterThan(0);
    for (const l of firstLines) if (l.kind === 'done') tally.handle(l.id);

    const secondSeen = new Map<string, { delivery: number; at: number }>();
    await apps.start({ servers: testNatsUrl() }, [
      handlerClass('SecondInstance', subject, { durable, concurrency: 4, ackWaitMs: ACK_WAIT_MS }, (payload, ctx) => {
        const id = (payload as { id: string }).id;
        if (!secondSeen.has(id)) secondSeen.set(id, { delivery: ctx.deliveryCount, at: Date.now() });
        tally.handle(id);
      }),
    ]);
    await waitFor(() => tally.complete(), { timeoutMs: 30_000, message: () => `the second instance did not pick everything up: ${tally.describe()}` });
    await waitFor(
      async () => {
        const info = await client().jsm.consumers.info(stream, durable);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      { timeoutMs: 30_000, message: () => `consumer never settled: ${tally.describe()}` },
    );

    expect(tally.unexpected()).toEqual([]);
    expect(tally.lost()).toEqual([]);
    // The calls the kill cut short came back as redeliveries, once their ack wait ran out.
    for (const id of cutMidHandler) {
      const seen = secondSeen.get(id);
      expect(seen).toBeDefined();
      expect(seen!.delivery).toBeGreaterThanOrEqual(2);
      expect(seen!.at).toBeGreaterThanOrEqual(exit.at);
    }
    const redeliveredAfterMs = Math.max(...cutMidHandler.map((id) => secondSeen.get(id)!.at - exit.at));
    // Handed back by the ack wait, not stranded: a generous bound, for a loaded machine.
    expect(redeliveredAfterMs).toBeLessThan(ACK_WAIT_MS + 15_000);
    // A duplicate can only be a message the first instance had in hand (done, its ack died with it).
    for (const [id] of tally.duplicates()) expect(startedByFirst.has(id)).toBe(true);

    tally.record(
      'consumer crash (app SIGKILLed mid-handler), at-least-once',
      `calls cut mid-handler were redelivered to a second instance on the same durable (ack wait ${ACK_WAIT_MS / 1000} s)`,
      {
        duplicatesVary: true,
        measured:
          `${firstLines.filter((l) => l.kind === 'done').length} done by the killed instance, ${cutMidHandler.length} cut mid-handler, ` +
          `the last back ${(redeliveredAfterMs / 1000).toFixed(1)} s after the kill` +
          `${tally.duplicates().length ? `; ${tally.duplicates().length} finished but unacked at the kill, handled again` : ''}`,
      },
    );
  }, TEST_TIMEOUT_MS);
});
