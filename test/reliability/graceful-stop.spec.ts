import 'reflect-metadata';
import { testNatsUrl, withDeadline, waitFor } from '../harness/index.js';
import { handlerClass } from '../integration/kit.js';
import { prefilledStream, WorkerProcess, workerScenario, type WorkerConfig } from './child-app.js';
import { scale } from './report.js';

const COUNT = scale(300, 3_000);
const TEST_TIMEOUT_MS = scale(90_000, 600_000);
const SHUTDOWN_TIMEOUT_MS = 5_000;
// Long (the default), so a message a stopping instance kept without settling would visibly stall.
const ACK_WAIT_MS = 30_000;
// Nest's own teardown and the connection drain, on top of the handlers' time: generous, so a
// loaded machine passes; a shutdown that waited for the ack wait (30 s) would still fail.
const EXIT_MARGIN_MS = 10_000;

/**
 * SIGTERM to a service under load (`app.enableShutdownHooks()`): handler calls in flight finish
 * and are acked, buffered messages are handed back, the process exits within its shutdown
 * timeout, and the next instance on the same durable takes the rest at once.
 */
describe('reliability: graceful stop (SIGTERM under load)', () => {
  const { apps, workers, client } = workerScenario();

  it('in-flight handlers finish, nothing is acked unprocessed, the process exits in time and the next instance drains the rest', async () => {
    const { stream, subject, durable, tally } = await prefilledStream(client(), 'gstop', COUNT);

    const config: WorkerConfig = {
      servers: testNatsUrl(),
      subject,
      durable,
      ackWaitMs: ACK_WAIT_MS,
      concurrency: 8,
      shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS,
      minHandlerMs: 200,
      maxHandlerMs: 500,
    };
    const first = await WorkerProcess.start(config);
    workers.push(first);
    // Under load: a backlog buffered, every concurrency slot busy.
    await waitFor(
      () => {
        const lines = first.lines();
        return lines.filter((l) => l.kind === 'done').length >= 24 && first.inFlight(lines).length >= 4;
      },
      { timeoutMs: 30_000, intervalMs: 5, message: () => `the worker never got busy: ${first.lines().length} lines` },
    );
    const termAt = Date.now();
    first.signal('SIGTERM');
    const exit = await withDeadline(first.exited, SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS + 5_000, 'the worker to exit after SIGTERM');
    const exitMs = exit.at - termAt;

    const lines = first.lines();
    const inFlightAtTerm = lines.filter((l) => l.kind === 'start' && l.at <= termAt).map((l) => l.id).filter((id) => !lines.some((l) => l.kind === 'done' && l.id === id && l.at <= termAt));
    // Exited by itself, cleanly: Nest re-raises the signal after its hooks, or the process ends with 0.
    expect(exit.signal === 'SIGTERM' || exit.code === 0).toBe(true);
    expect(exitMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS);
    // Every handler call that had begun finished: none cut short by the stop.
    expect(first.inFlight(lines)).toEqual([]);
    expect(inFlightAtTerm.length).toBeGreaterThan(0);
    expect(first.logs()).not.toMatch(/still running after/);
    const doneByFirst = lines.filter((l) => l.kind === 'done').map((l) => l.id);
    for (const id of doneByFirst) tally.handle(id);

    const startedAt = Date.now();
    await apps.start({ servers: testNatsUrl() }, [
      handlerClass('NextInstance', subject, { durable, concurrency: 8, ackWaitMs: ACK_WAIT_MS }, (payload) => {
        tally.handle((payload as { id: string }).id);
      }),
    ]);
    // Well inside the ack wait: what the first instance did not finish was handed back, not stranded.
    await waitFor(() => tally.complete(), {
      timeoutMs: ACK_WAIT_MS / 2,
      message: () => `the next instance did not get the rest promptly: ${tally.describe()}`,
    });
    const drainMs = Date.now() - startedAt;
    await waitFor(
      async () => {
        const info = await client().jsm.consumers.info(stream, durable);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      { timeoutMs: 10_000, message: () => `consumer never settled: ${tally.describe()}` },
    );

    // An id acked by the first instance without its handler finishing would be in neither journal.
    expect(tally.unexpected()).toEqual([]);
    expect(tally.lost()).toEqual([]);
    // Finished calls were acked before the exit, so none ran again.
    expect(tally.duplicates()).toEqual([]);

    tally.record(
      'graceful stop (SIGTERM under load), at-least-once',
      `calls in flight at SIGTERM finished and were acked before the exit (shutdown timeout ${SHUTDOWN_TIMEOUT_MS / 1000} s); the next instance drained the rest without waiting out the ${ACK_WAIT_MS / 1000} s ack wait`,
      {
        measured:
          `${inFlightAtTerm.length} in flight at SIGTERM; exited in ${(exitMs / 1000).toFixed(1)} s; ` +
          `${doneByFirst.length} handled before exit, the next instance drained the other ${COUNT - doneByFirst.length} in ${(drainMs / 1000).toFixed(1)} s`,
      },
    );
  }, TEST_TIMEOUT_MS);
});
