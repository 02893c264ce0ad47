import { waitFor } from '../harness/index.js';
import type { RawClient } from '../integration/kit.js';
import { WorkerProcess, type WorkerConfig } from './child-app.js';

/** Index of a prefilled id (`<prefix>-<i>`): its stream sequence minus one. */
export const indexOf = (id: string) => Number(id.slice(id.lastIndexOf('-') + 1));

export interface ExclusiveKillOutcome {
  readonly takeoverMs: number;
  /** Messages the killed instance finished whose ack died with it: the successor ran them again. */
  readonly duplicates: number;
}

/**
 * Issue 16's exclusive proof, shared by the single-server and the cluster specs: 3 worker
 * processes on one exclusive durable over a prefilled stream of `count` ids, the pinned one
 * SIGKILLed once a quarter is handled. Asserts that each instance handled in stream order with
 * no gap and that the successor starts at or before where the killed one stopped, never after.
 */
export async function exclusiveKillScenario(
  client: RawClient,
  workers: WorkerProcess[],
  run: { stream: string; subject: string; durable: string; count: number; servers: (i: number) => string; ackWaitMs: number; waitMs: number },
): Promise<ExclusiveKillOutcome> {
  const { stream, subject, durable, count } = run;
  const config = (i: number): WorkerConfig => ({
    servers: run.servers(i),
    subject,
    durable,
    ackWaitMs: run.ackWaitMs,
    concurrency: 1,
    shutdownTimeoutMs: 5_000,
    minHandlerMs: 3,
    maxHandlerMs: 8,
    exclusive: true,
  });
  const started = await Promise.all([0, 1, 2].map((i) => WorkerProcess.start(config(i))));
  workers.push(...started);
  const done = (w: WorkerProcess) => w.lines().filter((l) => l.kind === 'done');
  await waitFor(() => started.some((w) => done(w).length >= count / 4), { timeoutMs: run.waitMs, intervalMs: 5, message: 'a quarter handled' });
  const pinned = started.find((w) => done(w).length > 0)!;
  expect(started.filter((w) => w.lines().length > 0)).toEqual([pinned]);
  pinned.signal('SIGKILL');
  const exit = await pinned.exited;
  const survivors = started.filter((w) => w !== pinned);
  const handledBy = (w: WorkerProcess) => done(w).map((l) => indexOf(l.id));
  const union = () => new Set([...survivors.flatMap(handledBy), ...handledBy(pinned)]);
  await waitFor(() => union().size === count, { timeoutMs: run.waitMs, message: () => `all handled, got ${union().size}` });
  await waitFor(async () => (await client.jsm.consumers.info(stream, durable)).num_ack_pending === 0, { timeoutMs: 15_000, message: 'all acked' });

  const before = handledBy(pinned);
  const successor = survivors.filter((w) => done(w).length > 0);
  expect(successor).toHaveLength(1);
  const after = handledBy(successor[0]);
  // Each instance in stream order with no gap; the successor starts at or before where the
  // killed one stopped (its unacked tail comes again), never after it.
  expect(before).toEqual([...Array(before.length).keys()]);
  expect(after[0]).toBeLessThanOrEqual(before.length);
  expect(after).toEqual([...Array(count - after[0]).keys()].map((i) => i + after[0]));
  return { takeoverMs: done(successor[0])[0].at - exit.at, duplicates: before.length - after[0] };
}
