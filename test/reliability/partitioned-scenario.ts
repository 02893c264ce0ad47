import type { RawClient } from '../integration/kit.js';
import { waitFor } from '../harness/index.js';
import { WorkerProcess, type WorkerConfig, type WorkerLine } from './child-app.js';

export interface PartitionedRun {
  readonly keys: number;
  readonly messages: number;
  readonly partitions: number;
  readonly concurrency: number;
  /** Each worker's server list: one entry per worker started (the fourth joins mid-run). */
  readonly servers: (worker: number) => string;
  readonly ackWaitMs: number;
  readonly memberTtlMs: number;
  readonly pinnedTtlMs: number;
  readonly deadlineMs: number;
}

export interface PartitionedOutcome {
  readonly handled: number;
  readonly unique: number;
  readonly duplicates: number;
  /** Handled again after the kill that the killed worker had finished (done, ack lost with it). */
  readonly duplicatesOfKilled: number;
  /** Keys whose handled sequence, in handling order, was not 0, 1, 2, ... with repeats only at a takeover. */
  readonly outOfOrderKeys: string[];
  readonly lost: number;
  readonly perWorker: number[];
  readonly joinedHandled: number;
  readonly killTakeoverMs: number;
  /**
   * Keys of the killed worker's last handled messages that still had messages after its last
   * one when it died: the work a survivor had to take over. 0 when the killed worker had
   * drained its partitions before the kill (it can run ahead of the others on a loaded machine),
   * and then there is no takeover to time.
   */
  readonly killedKeysWithWorkLeft: number;
  /** From starting the fourth process to it being ready (joined, its partitions' consumers started). */
  readonly joinReadyMs: number;
  /** From starting the fourth process to its first handled message (the others released those partitions). */
  readonly joinFirstHandledMs: number;
  readonly elapsedMs: number;
}

/**
 * What every run must show: each key in order, nothing lost, the newcomer working, the killed
 * instance's partitions taken over, and as duplicates only what the killed instance had
 * finished: at most its `concurrency` calls.
 */
export function expectPartitionedGuarantees(outcome: PartitionedOutcome, concurrency: number): void {
  expect(outcome.outOfOrderKeys).toEqual([]);
  expect(outcome.lost).toBe(0);
  expect(outcome.joinedHandled).toBeGreaterThan(0);
  // A takeover can be timed only when the killed worker's partitions had work left; the loss and
  // order checks above hold either way.
  if (outcome.killedKeysWithWorkLeft > 0) expect(Number.isFinite(outcome.killTakeoverMs)).toBe(true);
  expect(outcome.duplicates).toBe(outcome.duplicatesOfKilled);
  expect(outcome.duplicates).toBeLessThanOrEqual(concurrency);
}

/** Message `j` goes to key `j % keys` as that key's `floor(j / keys)`-th: id `k<key>/<n>`. */
export async function publishKeyed(client: RawClient, stream: string, keys: number, messages: number): Promise<void> {
  const window: Array<Promise<unknown>> = [];
  for (let j = 0; j < messages; j++) {
    const key = j % keys;
    const id = `k${key}/${Math.floor(j / keys)}`;
    // One connection, publishes sent in order: the stream stores each key's messages in order.
    window.push(client.js.publish(`${stream}.k${key}.evt`, JSON.stringify({ id }), { msgID: id }));
    if (window.length >= 500) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
}

/**
 * 3 worker processes on a partitioned group over `messages` prefilled messages of `keys` keys; a
 * fourth joins once a fifth is handled, and one of the first three is SIGKILLed at 55 %. The
 * journals tell, per key, the order messages were handled in across the processes.
 */
export async function runPartitioned(client: RawClient, stream: string, durable: string, run: PartitionedRun, workers: WorkerProcess[]): Promise<PartitionedOutcome> {
  const base = (i: number): WorkerConfig => ({
    servers: run.servers(i),
    subject: `${stream}.*.evt`,
    durable,
    ackWaitMs: run.ackWaitMs,
    concurrency: run.concurrency,
    shutdownTimeoutMs: 5_000,
    minHandlerMs: 3,
    maxHandlerMs: 8,
    partitions: { count: run.partitions, key: 1, memberTtlMs: run.memberTtlMs, pinnedTtlMs: run.pinnedTtlMs },
  });
  const started = Date.now();
  const first = await Promise.all([0, 1, 2].map((i) => WorkerProcess.start(base(i))));
  workers.push(...first);
  const done = () => workers.flatMap((w) => w.lines().filter((l) => l.kind === 'done'));
  const uniqueDone = () => new Set(done().map((l) => l.id)).size;
  await waitFor(() => uniqueDone() >= run.messages / 5, { timeoutMs: run.deadlineMs, intervalMs: 50, message: () => `a fifth handled, got ${uniqueDone()}` });
  const joinStarted = Date.now();
  const joined = await WorkerProcess.start(base(3));
  workers.push(joined);
  const joinReadyMs = Date.now() - joinStarted;
  await waitFor(() => uniqueDone() >= run.messages * 0.55, { timeoutMs: run.deadlineMs, intervalMs: 50, message: () => `55 % handled, got ${uniqueDone()}` });
  // The one of the first three that handled a message last: it is still working, so it owns
  // partitions with messages left (the busiest may have drained its partitions already).
  const lastDone = (w: WorkerProcess) => Math.max(-1, ...w.lines().filter((l) => l.kind === 'done').map((l) => l.at));
  const victim = [...first].sort((a, b) => lastDone(b) - lastDone(a))[0];
  victim.signal('SIGKILL');
  const exit = await victim.exited;
  await waitFor(() => uniqueDone() >= run.messages, { timeoutMs: run.deadlineMs, intervalMs: 100, message: () => `all handled, got ${uniqueDone()} of ${run.messages}` });
  const elapsedMs = Date.now() - started;

  const journals = workers.map((w) => w.lines());
  const killedIndex = workers.indexOf(victim);
  const killedDone = new Set(journals[killedIndex].filter((l) => l.kind === 'done').map((l) => l.id));
  const survivorsAfterKill = journals.flatMap((lines, w) => (w === killedIndex ? [] : lines.filter((l) => l.kind === 'done' && l.at >= exit.at)));
  // Keys of the partitions the killed worker owned when it died: those of its last handled messages.
  const killedKeys = new Set(journals[killedIndex].filter((l) => l.kind === 'done').slice(-30).map(keyOf));
  const killTakeoverMs = Math.min(...survivorsAfterKill.filter((l) => killedKeys.has(keyOf(l))).map((l) => l.at)) - exit.at;
  const perKey = Math.ceil(run.messages / run.keys);
  const lastOfKilled = new Map<string, number>();
  for (const line of journals[killedIndex]) if (line.kind === 'done') lastOfKilled.set(keyOf(line), Math.max(lastOfKilled.get(keyOf(line)) ?? -1, seqOf(line)));
  const killedKeysWithWorkLeft = [...killedKeys].filter((key) => (lastOfKilled.get(key) ?? -1) < perKey - 1).length;
  const all = journals.flatMap((lines, w) => lines.filter((l) => l.kind === 'done').map((l, i) => ({ ...l, w, i })));
  const byKey = new Map<string, typeof all>();
  for (const line of all) {
    const key = keyOf(line);
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key)!.push(line);
  }
  const outOfOrderKeys: string[] = [];
  for (const [key, lines] of byKey) {
    lines.sort((a, b) => a.at - b.at || (a.w === b.w ? a.i - b.i : 0));
    let expected = 0;
    let previous: (typeof all)[number] | undefined;
    for (const line of lines) {
      const n = Number(line.id.slice(line.id.indexOf('/') + 1));
      // A repeat is allowed only as the next owner's redo of what the previous one finished.
      const repeat = previous !== undefined && n === expected - 1 && line.w !== previous.w;
      if (n === expected) expected++;
      else if (!repeat) {
        outOfOrderKeys.push(`${key}: ${lines.map((l) => `${l.id.slice(l.id.indexOf('/') + 1)}@w${l.w}`).join(' ')}`);
        break;
      }
      previous = line;
    }
  }
  const duplicatesOfKilled = survivorsAfterKill.filter((l) => killedDone.has(l.id)).length;
  const unique = new Set(all.map((l) => l.id)).size;
  return {
    handled: all.length,
    unique,
    duplicates: all.length - unique,
    duplicatesOfKilled,
    outOfOrderKeys,
    lost: run.messages - unique,
    perWorker: journals.map((lines) => lines.filter((l) => l.kind === 'done').length),
    joinedHandled: journals[3].filter((l) => l.kind === 'done').length,
    killTakeoverMs,
    killedKeysWithWorkLeft,
    joinReadyMs,
    joinFirstHandledMs: Math.min(...journals[3].filter((l) => l.kind === 'done').map((l) => l.at)) - joinStarted,
    elapsedMs,
  };
}

function keyOf(line: WorkerLine): string {
  return line.id.slice(0, line.id.indexOf('/'));
}

/** The message's number within its key (`<key>/<n>`). */
function seqOf(line: WorkerLine): number {
  return Number(line.id.slice(line.id.indexOf('/') + 1));
}
