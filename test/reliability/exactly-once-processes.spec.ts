import 'reflect-metadata';
import { NatsServerProcess, testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { createStream, openClient, type RawClient } from '../integration/kit.js';
import { prefilledStream, WorkerProcess, workerScenario, type WorkerConfig } from './child-app.js';
import { scale } from './report.js';
import { Tally } from './tally.js';

const COUNT = scale(300, 20_000);
const TEST_TIMEOUT_MS = scale(120_000, 900_000);
const ACK_WAIT_MS = 2_000;

/**
 * Exactly-once across application processes: two workers (child processes) on one durable,
 * each with its own connection and its own memory. Side effects are the "done" lines of their
 * journals (files this test reads), so a second handling cannot hide in either process.
 *
 * The instance that dies (A) handles one message at a time, and is frozen (SIGSTOP) while its
 * journal's last line is a "start": then every message it finished had its done mark written
 * before the next began. A process killed between a handler's return and its done mark (one KV
 * round trip) would run that handler again elsewhere; docs/delivery-guarantees.md states that
 * window, and this test keeps the kill out of it so that any duplicate is the module's.
 */
describe('reliability: exactly-once across processes', () => {
  const { workers, client } = workerScenario();
  let broker: NatsServerProcess | undefined;
  let brokerClient: RawClient | undefined;

  afterEach(async () => {
    await brokerClient?.close();
    brokerClient = undefined;
    await Promise.allSettled(workers.splice(0).map((w) => w.dispose()));
    await broker?.stop();
    broker = undefined;
  });

  function configs(servers: string, subject: string, durable: string, bucket: string): { a: WorkerConfig; b: WorkerConfig } {
    const base = { servers, subject, durable, bucket, ackWaitMs: ACK_WAIT_MS, shutdownTimeoutMs: 2_000, delivery: 'exactly-once' as const };
    return {
      // Slow enough that a few hundred messages last some seconds, so A still has work when frozen.
      a: { ...base, concurrency: 1, minHandlerMs: 5, maxHandlerMs: 20 },
      b: { ...base, concurrency: 4, minHandlerMs: 10, maxHandlerMs: 30 },
    };
  }

  /** Freezes `w` mid-handler: SIGSTOP while its journal ends with a "start", else let it run on and try again. */
  async function freezeMidHandler(w: WorkerProcess): Promise<string> {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      w.signal('SIGSTOP');
      const lines = w.lines();
      const last = lines[lines.length - 1];
      if (last?.kind === 'start') return last.id;
      w.signal('SIGCONT');
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    throw new Error(`never caught the worker mid-handler (its journal ends: ${JSON.stringify(w.lines().slice(-2))})`);
  }

  function tallyJournals(tally: Tally, ...ws: WorkerProcess[]): void {
    for (const w of ws) for (const l of w.lines()) if (l.kind === 'done') tally.handle(l.id);
  }

  async function settledConsumer(raw: RawClient, stream: string, durable: string, describe: () => string): Promise<void> {
    await waitFor(
      async () => {
        const info = await raw.jsm.consumers.info(stream, durable);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      { timeoutMs: 60_000, intervalMs: 200, message: () => `consumer never settled: ${describe()}` },
    );
  }

  it('one of two worker processes SIGKILLed mid-handler: every id handled exactly once, the cut call finished by the other', async () => {
    const { stream, subject, durable, tally } = await prefilledStream(client(), 'eoproc', COUNT);
    const { a: aConfig, b: bConfig } = configs(testNatsUrl(), subject, durable, uniqueName('eoproc'));
    const a = await WorkerProcess.start(aConfig);
    workers.push(a);
    const b = await WorkerProcess.start(bConfig);
    workers.push(b);
    await waitFor(() => a.lines().filter((l) => l.kind === 'done').length + b.lines().filter((l) => l.kind === 'done').length >= COUNT / 3, {
      timeoutMs: 60_000,
      message: 'never got a third of the way',
    });
    const cut = await freezeMidHandler(a);
    a.signal('SIGKILL');
    expect((await a.exited).signal).toBe('SIGKILL');
    const doneByA = a.lines().filter((l) => l.kind === 'done').length;

    await waitFor(
      () => {
        const t = new Tally();
        for (let i = 0; i < COUNT; i++) t.confirmPublished(`eoproc-${i}`);
        tallyJournals(t, a, b);
        return t.complete();
      },
      { timeoutMs: 60_000, intervalMs: 100, message: () => `the survivor did not finish: ${b.lines().length} lines` },
    );
    await settledConsumer(client(), stream, durable, () => tally.describe());
    tallyJournals(tally, a, b);
    expect(tally.unexpected()).toEqual([]);
    expect(tally.lost()).toEqual([]);
    expect(tally.duplicates()).toEqual([]);
    // The call the kill cut short was finished by the survivor, on a redelivery.
    const finished = b.lines().find((l) => l.kind === 'done' && l.id === cut);
    expect(finished?.delivery).toBeGreaterThanOrEqual(2);

    tally.record(
      'consumer crash, exactly-once, two worker processes (one SIGKILLed mid-handler)',
      'the cut call and the killed process\'s unacked messages were finished by the other process; side effects counted from both journals',
      { measured: `${doneByA} done by the killed process, ${tally.publishedCount - doneByA} by the survivor` },
    );
  }, TEST_TIMEOUT_MS);

  async function brokerCrash(forceToOther: boolean): Promise<void> {
    broker = await NatsServerProcess.start({ config: 'jetstream {\n  sync_interval: always\n}\n' });
    brokerClient = await openClient(broker.url);
    const raw = brokerClient;
    const prefix = forceToOther ? 'eobrokerb' : 'eobrokera';
    // Both processes consume before the first publish, so both get a share.
    const stream = uniqueName(prefix.toUpperCase());
    const subject = `${stream}.evt`;
    const durable = uniqueName(prefix);
    await createStream(raw.jsm, stream, [`${stream}.>`]);
    const { a: aConfig, b: bConfig } = configs(broker.url, subject, durable, uniqueName(prefix));
    const a = await WorkerProcess.start(forceToOther ? aConfig : { ...aConfig, concurrency: 4 });
    workers.push(a);
    const b = await WorkerProcess.start(bConfig);
    workers.push(b);
    const tally = new Tally();
    const ids = Array.from({ length: COUNT }, (_, i) => `${prefix}-${i}`);
    for (let i = 0; i < ids.length; i += 100) {
      await Promise.all(ids.slice(i, i + 100).map((id) => raw.js.publish(subject, JSON.stringify({ id }), { msgID: id })));
    }
    for (const id of ids) tally.confirmPublished(id);
    const doneCount = (w: WorkerProcess) => w.lines().filter((l) => l.kind === 'done').length;
    await waitFor(() => doneCount(a) + doneCount(b) >= COUNT / 3 && doneCount(a) > 0 && doneCount(b) > 0, {
      timeoutMs: 60_000,
      message: () => `never got a third of the way (A ${doneCount(a)}, B ${doneCount(b)})`,
    });
    // Forced: A is frozen first, then the broker dies, and A never comes back. Everything A
    // handled had its done mark confirmed; whatever the broker forgets about A's acks comes
    // back to B, which never saw those messages: only the shared record can tell it.
    // Otherwise both stay up: calls that finish while the broker is down owe their done mark,
    // and the redelivery may reach the other process before the finisher writes it.
    if (forceToOther) await freezeMidHandler(a);
    await brokerClient.close();
    brokerClient = undefined;
    const killedAt = Date.now();
    await broker.kill('SIGKILL');
    await broker.restart();
    const restartedAt = Date.now();
    if (forceToOther) {
      a.signal('SIGKILL');
      await a.exited;
    }
    const doneByA = a.lines().filter((l) => l.kind === 'done').length;
    brokerClient = await openClient(broker.url);
    const after = brokerClient;

    await waitFor(
      () => {
        const t = new Tally();
        for (let i = 0; i < COUNT; i++) t.confirmPublished(`${prefix}-${i}`);
        tallyJournals(t, a, b);
        return t.complete();
      },
      { timeoutMs: 90_000, intervalMs: 200, message: () => `not finished: ${a.lines().length} + ${b.lines().length} lines\n${b.logs().slice(-3000)}` },
    );
    await settledConsumer(after, stream, durable, () => tally.describe());
    tallyJournals(tally, a, b);
    const redelivered = [a, b].map((w) => w.lines().filter((l) => l.kind === 'start' && l.delivery >= 2).length);
    expect(tally.unexpected()).toEqual([]);
    expect(tally.lost()).toEqual([]);
    expect(tally.duplicates()).toEqual([]);

    tally.record(
      forceToOther
        ? 'broker crash (kill -9 + restart, sync_interval: always), exactly-once, two worker processes, redeliveries forced to the survivor'
        : 'broker crash (kill -9 + restart, sync_interval: always), exactly-once, two worker processes both up',
      forceToOther
        ? 'one process frozen before the kill and killed after it; its messages went to the other, which skipped those marked done; side effects counted from both journals'
        : 'calls finished during the outage wrote their done marks once the broker was back, before the other process could take their leases; side effects counted from both journals',
      {
        measured: `outage ${((restartedAt - killedAt) / 1000).toFixed(1)} s; ${doneByA} done by process A; redelivered calls begun: ${redelivered[0]} on A, ${redelivered[1]} on B`,
      },
    );
  }

  it('broker kill -9 and restart (sync_interval: always) with two worker processes both up: every id handled exactly once', () => brokerCrash(false), TEST_TIMEOUT_MS);

  it('broker kill -9 and restart (sync_interval: always) with two worker processes, redeliveries forced to the other: every id handled exactly once', () => brokerCrash(true), TEST_TIMEOUT_MS);
});
