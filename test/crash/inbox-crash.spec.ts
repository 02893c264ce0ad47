import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Injectable } from '@nestjs/common';
import { StorageType } from '@nats-io/jetstream';
import {
  ensureSchema,
  openDatabase,
  type OpenedDatabase,
  IDEMPOTENCY_KEY_HEADER,
  inboxDdl,
  InboxTransaction,
  JetStreamInboxModule,
  JetStreamModule,
  JetStreamPublisher,
  OnEvent,
  tableName,
  type BatchContext,
  type EventContext,
} from '../../lib/index.js';
import { deferred, NatsServerProcess, testNatsUrl, uniqueName, waitFor, withDeadline } from '../harness/index.js';
import { CapturingLogger, startApp, type TestApp } from '../support/test-app.js';
import { openTestDatabase, type TestDatabase } from '../support/test-database.js';
import { describeWithPrivatePostgres, PrivatePostgres } from '../support/private-postgres.js';
import { AppTracker, createStream, openClient, sharedServerHooks, type RawClient } from '../integration/kit.js';

/**
 * The inbox's promise under real failures: a consumer SIGKILLed between its commit and its ack,
 * the broker SIGKILLed and restarted, two instances on one durable fed copies. The side effect
 * is a row in the same database, so "exactly once" is counted there, not in memory.
 */
const hooks = sharedServerHooks();
const WORKER = resolve(dirname(fileURLToPath(import.meta.url)), 'apps/inbox-worker.mjs');

/**
 * Runs the worker until it SIGKILLs itself after the commit of `dieAfter`; hands back the ids
 * that commit held. PGlite is one process at a time: the child gets the files while it runs,
 * and this process's handle is open again when this resolves.
 */
async function runUntilKilled(db: TestDatabase, config: Record<string, unknown>, marker: 'COMMITTED' | 'OPEN' = 'COMMITTED'): Promise<string[]> {
  await db.release();
  const output: string[] = [];
  const env = { INBOX_WORKER: JSON.stringify({ servers: testNatsUrl(), database: db.target, ...config }) };
  const child = spawn(process.execPath, [WORKER], { env: { ...process.env, NODE_OPTIONS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = deferred<{ code: number | null; signal: NodeJS.Signals | null }>();
  child.once('exit', (code, signal) => exited.resolve({ code, signal }));
  child.stdout.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  // A deadline that tells a hang from a loaded machine: the child starts Nest and, on PGlite,
  // a WASM PostgreSQL from files, which alone took over a minute at a load average of 13.
  const exit = await withDeadline(exited.promise, 180_000, 'the worker to die after its commit').catch(async (err: unknown) => {
    child.kill('SIGKILL');
    await exited.promise;
    // The other tests of this file share the database: hand it back before failing.
    await db.reopen();
    throw new Error(`${(err as Error).message}; the worker printed:\n${output.join('')}`);
  });
  await db.reopen();
  const committed = new RegExp(`${marker} (\\[.*\\])`).exec(output.join(''));
  expect({ exit, output: committed ? 'printed' : output.join('') }).toEqual({ exit: { code: null, signal: 'SIGKILL' }, output: 'printed' });
  return JSON.parse(committed![1]) as string[];
}

/** Waits until the second instance acked all `count` messages of the stream. */
async function allAcked(stream: string, durable: string, count: number): Promise<void> {
  await waitFor(
    async () => {
      const i = await hooks.client.jsm.consumers.info(stream, durable);
      return i.ack_floor.stream_seq === count && i.num_ack_pending === 0;
    },
    { timeoutMs: 60_000, message: 'the second instance settled everything' },
  );
}

/** A stream holding one `created` message per id, each with its id as msg-id. */
async function publishedOrders(prefix: string, ids: string[]): Promise<{ stream: string; subject: string }> {
  const stream = uniqueName(prefix);
  const subject = `${stream}.created`;
  await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
  for (const id of ids) await hooks.client.js.publish(subject, JSON.stringify({ id }), { msgID: id });
  return { stream, subject };
}

interface Tx {
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

/** Tables of one test (one database per file: PGlite takes seconds to start). */
async function prepare(t: Pick<TestDatabase, 'db' | 'table'>, prefix: string): Promise<{ charges: string; inbox: string }> {
  const charges = t.table(`${prefix}_charges`);
  await t.db.query(`CREATE TABLE ${charges} (order_id text NOT NULL, attempt int NOT NULL)`);
  const inbox = t.table(`${prefix}_inbox`);
  await ensureSchema((work) => t.db.transaction((sql) => work(sql)), inboxDdl(tableName(inbox, 'table')));
  return { charges, inbox };
}

/** order id → how many charge rows it has; every id must end with exactly one. */
async function chargesPerOrder(t: Pick<TestDatabase, 'db'>, charges: string): Promise<Map<string, number>> {
  const rows = await t.db.query<{ order_id: string; n: string | number }>(`SELECT order_id, count(*) AS n FROM ${charges} GROUP BY order_id`);
  return new Map(rows.map((r) => [r.order_id, Number(r.n)]));
}

function notOnce(counts: Map<string, number>, ids: string[]): string[] {
  return ids.filter((id) => counts.get(id) !== 1).map((id) => `${id}: ${counts.get(id) ?? 0}`);
}

function billingClass(subject: string, charges: string, options: { durable: string; ackWaitMs?: number; concurrency?: number }, calls: string[]) {
  @Injectable()
  class Billing {
    @OnEvent(subject, { ...options, inbox: true })
    async charge(order: { id: string }, ctx: EventContext, @InboxTransaction() tx: Tx): Promise<void> {
      calls.push(order.id);
      await tx.query(`INSERT INTO ${charges} (order_id, attempt) VALUES ($1, $2)`, [order.id, ctx.attempt]);
    }
  }
  return Billing;
}

async function startInboxApp(t: Pick<TestDatabase, 'db'>, inbox: string, servers: string, providers: unknown[], tracker: { track(app: TestApp): TestApp }, groupCommit = false): Promise<TestApp> {
  return tracker.track(
    await startApp(
      {
        imports: [JetStreamModule.forRoot({ servers, shutdownTimeoutMs: 2_000 }), JetStreamInboxModule.forRoot({ database: t.db, table: inbox, groupCommit })],
        providers: providers as never[],
      },
      new CapturingLogger(),
    ),
  );
}

/**
 * 60 orders `<prefix>-<i>` waiting; a group-commit worker (16 at once, one group transaction at
 * a time) SIGKILLed after the COMMIT of the group holding `<prefix>-25`, or, `midGroup`, right
 * after its INSERT with the group open. Hands back that group's ids.
 */
async function killGroupWorker(prefix: string, midGroup: boolean) {
  const { charges, inbox } = await prepare(t, prefix);
  const ids = Array.from({ length: 60 }, (_, i) => `${prefix}-${i}`);
  const { stream, subject } = await publishedOrders(prefix.toUpperCase(), ids);
  const durable = 'billing';
  const ackWaitMs = 2_000;
  const config = { subject, durable, ackWaitMs, concurrency: 16, groupCommit: true, killMidGroup: midGroup, inboxTable: inbox, chargesTable: charges, dieAfter: `${prefix}-25` };
  const group = await runUntilKilled(t, config, midGroup ? 'OPEN' : 'COMMITTED');
  return { charges, inbox, ids, stream, subject, durable, ackWaitMs, group };
}

let t: TestDatabase;
beforeAll(async () => {
  // On disk: the SIGKILL test hands PGlite's files to a child process.
  t = await openTestDatabase('inboxcrash', { onDisk: true });
});
afterAll(async () => {
  await t?.close();
});

describe('inbox under failures', () => {

  it('a consumer SIGKILLed after its commit and before its ack: the redelivery is acked as a duplicate, every order charged once', async () => {
    const db = t;
    const { charges, inbox } = await prepare(db, 'kill');
    const ids = Array.from({ length: 20 }, (_, i) => `kill-${i}`);
    const { stream, subject } = await publishedOrders('INBOXKILL', ids);
    const dieAfter = 'kill-9';
    const durable = 'billing';
    const ackWaitMs = 2_000;

    expect(await runUntilKilled(db, { subject, durable, ackWaitMs, inboxTable: inbox, chargesTable: charges, dieAfter })).toEqual([dieAfter]);
    // Its row is in; its ack never left.
    expect((await chargesPerOrder(db, charges)).get(dieAfter)).toBe(1);
    const info = await hooks.client.jsm.consumers.info(stream, durable);
    expect(info.ack_floor.stream_seq).toBeLessThan(ids.indexOf(dieAfter) + 1);

    const calls: string[] = [];
    await startInboxApp(db, inbox, testNatsUrl(), [billingClass(subject, charges, { durable, ackWaitMs }, calls)], hooks.apps);
    await allAcked(stream, durable, ids.length);
    expect(notOnce(await chargesPerOrder(db, charges), ids)).toEqual([]);
    // The killed message came back and found its inbox row: no second call.
    expect(calls).not.toContain(dieAfter);
  }, 300_000);

  it('a batch handler SIGKILLed after its batch committed and before its acks: the batch comes back, is acked without a call, every order charged once', async () => {
    const db = t;
    const { charges, inbox } = await prepare(db, 'bkill');
    const ids = Array.from({ length: 60 }, (_, i) => `bkill-${i}`);
    const { stream, subject } = await publishedOrders('BINBOXKILL', ids);
    const durable = 'billing';
    const ackWaitMs = 2_000;
    const maxMessages = 10;

    const killedBatch = await runUntilKilled(db, { subject, durable, ackWaitMs, maxMessages, inboxTable: inbox, chargesTable: charges, dieAfter: 'bkill-25' });
    expect(killedBatch).toContain('bkill-25');
    // The killed batch is committed, its acks never left.
    const afterKill = await chargesPerOrder(db, charges);
    expect(killedBatch.filter((id) => afterKill.get(id) !== 1)).toEqual([]);
    const info = await hooks.client.jsm.consumers.info(stream, durable);
    expect(info.ack_floor.stream_seq).toBeLessThan(ids.indexOf(killedBatch[killedBatch.length - 1]) + 1);

    const calls: string[] = [];
    @Injectable()
    class Billing {
      @OnEvent(subject, { durable, ackWaitMs, inbox: true, batch: { maxMessages, maxWaitMs: 200 } })
      async charge(orders: Array<{ id: string }>, _batch: BatchContext, @InboxTransaction() tx: Tx): Promise<void> {
        calls.push(...orders.map((o) => o.id));
        for (const o of orders) await tx.query(`INSERT INTO ${charges} (order_id, attempt) VALUES ($1, 2)`, [o.id]);
      }
    }
    await startInboxApp(db, inbox, testNatsUrl(), [Billing], hooks.apps);
    await allAcked(stream, durable, ids.length);
    expect(notOnce(await chargesPerOrder(db, charges), ids)).toEqual([]);
    // The committed batch came back and found its inbox rows: none of it reached the handler.
    expect(calls.filter((id) => killedBatch.includes(id))).toEqual([]);
    expect(calls.length).toBe(ids.length - afterKill.size);
  }, 300_000);

  it.each([
    ['a transaction per message', false],
    ['group commit', true],
  ])('two instances on one durable, every order published twice (%s): each charged once, no group waits for good on another', async (_mode, groupCommit) => {
    // With group commit, the two copies of a key often sit in two groups of two instances at
    // once: the second claim waits for the first group's COMMIT (PostgreSQL row lock; PGlite
    // runs one transaction at a time), then finds the row. Keys are claimed in sorted order, so
    // two groups never wait on each other: the deadline below would catch a deadlock (1 s each).
    const { charges, inbox } = await prepare(t, groupCommit ? 'twog' : 'two');
    const stream = uniqueName(groupCommit ? 'INBOXTWOG' : 'INBOXTWO');
    const subject = `${stream}.created`;
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const calls: string[] = [];
    const Billing = billingClass(subject, charges, { durable: 'billing', concurrency: 8 }, calls);
    const a = await startInboxApp(t, inbox, testNatsUrl(), [Billing], hooks.apps, groupCommit);
    await startInboxApp(t, inbox, testNatsUrl(), [Billing], hooks.apps, groupCommit);
    const ids = Array.from({ length: 150 }, (_, i) => `two-${i}`);
    // Two messages per order, distinct to the stream, one key to the inbox (as a redrive is).
    await a.app.get(JetStreamPublisher).publishBatch(
      ids.flatMap((id) => [1, 2].map((copy) => ({ subject, payload: { id }, options: { msgId: `${id}-${copy}`, headers: { [IDEMPOTENCY_KEY_HEADER]: id } } }))),
    );
    await waitFor(
      async () => {
        const i = await hooks.client.jsm.consumers.info(stream, 'billing');
        return i.ack_floor.stream_seq === 2 * ids.length && i.num_ack_pending === 0;
      },
      { timeoutMs: 20_000, message: 'all copies settled' },
    );
    expect(notOnce(await chargesPerOrder(t, charges), ids)).toEqual([]);
    expect(calls.length).toBe(ids.length);
  }, 60_000);

  it('group commit, SIGKILLed after a group committed and before its acks: the group comes back, is acked without a call, every order charged once', async () => {
    const { charges, inbox, ids, stream, subject, durable, ackWaitMs, group: killedGroup } = await killGroupWorker('gkill', false);
    expect(killedGroup).toContain('gkill-25');
    const afterKill = await chargesPerOrder(t, charges);
    expect(killedGroup.filter((id) => afterKill.get(id) !== 1)).toEqual([]);

    const calls: string[] = [];
    await startInboxApp(t, inbox, testNatsUrl(), [billingClass(subject, charges, { durable, ackWaitMs, concurrency: 16 }, calls)], hooks.apps, true);
    await allAcked(stream, durable, ids.length);
    expect(notOnce(await chargesPerOrder(t, charges), ids)).toEqual([]);
    // Acked only after the COMMIT, so the whole group came back, and found its rows.
    expect(calls.filter((id) => killedGroup.includes(id))).toEqual([]);
  }, 300_000);

  it('group commit, SIGKILLed in the middle of a group: nothing of the group committed, every order charged once after the restart', async () => {
    const { charges, inbox, ids, stream, subject, durable, ackWaitMs, group: openGroup } = await killGroupWorker('gmid', true);
    expect(openGroup).toContain('gmid-25');
    // The group's rows went with its transaction; what committed before it stays, once.
    const afterKill = await chargesPerOrder(t, charges);
    expect(openGroup.filter((id) => afterKill.has(id))).toEqual([]);
    expect([...afterKill.values()].filter((n) => n !== 1)).toEqual([]);

    const calls: string[] = [];
    await startInboxApp(t, inbox, testNatsUrl(), [billingClass(subject, charges, { durable, ackWaitMs, concurrency: 16 }, calls)], hooks.apps, true);
    await allAcked(stream, durable, ids.length);
    expect(notOnce(await chargesPerOrder(t, charges), ids)).toEqual([]);
    expect(calls).toEqual(expect.arrayContaining(openGroup));
  }, 300_000);
});

describe('inbox: broker crash', () => {
  const apps = new AppTracker();
  let server: NatsServerProcess | undefined;
  let client: RawClient | undefined;
  afterEach(async () => {
    await client?.close();
    await apps.closeAll();
    await server?.stop();
    client = undefined;
    server = undefined;
  });

  it('the broker SIGKILLed mid-stream and restarted: the app resumes by itself and every order is charged once', async () => {
    server = await NatsServerProcess.start();
    const { charges, inbox } = await prepare(t, 'broker');
    client = await openClient(server.url);
    const stream = uniqueName('INBOXCRASH');
    const subject = `${stream}.created`;
    await client.jsm.streams.add({ name: stream, subjects: [`${stream}.>`], storage: StorageType.File });
    const ids = Array.from({ length: 300 }, (_, i) => `crash-${i}`);
    for (const id of ids) await client.js.publish(subject, JSON.stringify({ id }), { msgID: id });
    await client.close();
    client = undefined;

    const calls: string[] = [];
    @Injectable()
    class Billing {
      @OnEvent(subject, { durable: 'billing', inbox: true, concurrency: 4, ackWaitMs: 2_000 })
      async charge(order: { id: string }, ctx: EventContext, @InboxTransaction() tx: Tx): Promise<void> {
        calls.push(order.id);
        await tx.query(`INSERT INTO ${charges} (order_id, attempt) VALUES ($1, $2)`, [order.id, ctx.attempt]);
        // Slow enough that the kill lands mid-stream, with transactions open and acks in flight.
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    const db = t;
    await startInboxApp(db, inbox, server.url, [Billing], apps);
    await waitFor(async () => (await chargesPerOrder(db, charges)).size >= 60, { timeoutMs: 20_000, message: 'a fifth of the orders charged' });
    await server.kill('SIGKILL');
    await server.restart();
    await waitFor(async () => (await chargesPerOrder(db, charges)).size === ids.length, { timeoutMs: 40_000, message: 'every order charged after the restart' });
    client = await openClient(server.url);
    const raw = client;
    await waitFor(
      async () => {
        const i = await raw.jsm.consumers.info(stream, 'billing');
        return i.num_pending === 0 && i.num_ack_pending === 0;
      },
      { timeoutMs: 30_000, message: 'the consumer settled' },
    );
    expect(notOnce(await chargesPerOrder(db, charges), ids)).toEqual([]);
  }, 90_000);
});

// The database server under the consumer crashes and comes back: a cluster of this file's own
// (see support/private-postgres.ts), so the machine's shared server is never touched. Runs on
// every machine with the PostgreSQL binaries, whatever DATABASE_URL says.
describeWithPrivatePostgres('inbox: the database goes down under a consumer', (bin) => {
  const hooks = sharedServerHooks();
  let cluster: PrivatePostgres;
  let db: OpenedDatabase;
  /** The cluster seen as a TestDatabase, for the helpers above. */
  const target = { get db() { return db; }, table: (base: string) => base };
  beforeAll(async () => {
    cluster = await PrivatePostgres.start(bin());
    db = await openDatabase({ url: cluster.url });
  }, 180_000);
  afterEach(async () => {
    // A test that failed while the cluster was down must not fail the next one too.
    await cluster?.ensureRunning();
  });
  afterAll(async () => {
    await db?.close();
    await cluster?.destroy();
  });

  /** A charging handler that, on the first attempt of `victim`, stops after its INSERT until `cut` ran. */
  function billingWithCut(subject: string, charges: string, victim: string, cut: (tx: Tx) => Promise<void>, calls: string[]) {
    const reached = deferred<void>();
    const cutDone = deferred<void>();
    @Injectable()
    class Billing {
      @OnEvent(subject, { durable: 'billing', inbox: true, concurrency: 4, retry: { maxAttempts: 50, initialDelayMs: 100, maxDelayMs: 1_000, jitter: false } })
      async charge(order: { id: string }, ctx: EventContext, @InboxTransaction() tx: Tx): Promise<void> {
        calls.push(`${order.id}#${ctx.attempt}`);
        await tx.query(`INSERT INTO ${charges} (order_id, attempt) VALUES ($1, $2)`, [order.id, ctx.attempt]);
        if (order.id === victim && ctx.attempt === 1) {
          reached.resolve();
          // The handler goes on as if nothing happened: the COMMIT after it is what must fail.
          await cut(tx).then(() => cutDone.resolve(), (err: unknown) => cutDone.reject(err));
        }
        // Slow enough that other orders are in flight when the database goes.
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    return { Billing, reached: reached.promise, cutDone: cutDone.promise };
  }

  /** The tables and a stream of one scenario on the private cluster. */
  async function scenario(prefix: string): Promise<{ charges: string; inbox: string; stream: string; subject: string }> {
    const tables = await prepare(target, prefix);
    const stream = uniqueName(`INBOX${prefix.toUpperCase()}`);
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    return { ...tables, stream, subject: `${stream}.created` };
  }

  /** Every order charged once, the kept charge is a retry's, one inbox row per order. */
  async function expectChargedOnce(charges: string, inbox: string, ids: string[], victim: string): Promise<void> {
    expect(notOnce(await chargesPerOrder(target, charges), ids)).toEqual([]);
    const [kept] = await db.query<{ attempt: number }>(`SELECT attempt FROM ${charges} WHERE order_id = $1`, [victim]);
    // The first attempt's INSERT went with its connection; the retry's is the one kept.
    expect(Number(kept.attempt)).toBeGreaterThan(1);
    const [{ n }] = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${inbox}`);
    expect(Number(n)).toBe(ids.length);
  }

  async function settled(stream: string, total: number): Promise<void> {
    await waitFor(
      async () => {
        const i = await hooks.client.jsm.consumers.info(stream, 'billing');
        return i.ack_floor.stream_seq === total && i.num_pending === 0 && i.num_ack_pending === 0;
      },
      // A deadline that tells a hang from a loaded machine, not a duration.
      { timeoutMs: 120_000, message: 'the consumer settled every order' },
    );
  }

  it("its connection killed in the middle of an attempt (pg_terminate_backend): rolled back, retried, charged once", async () => {
    const { charges, inbox, stream, subject } = await scenario('cut');
    const calls: string[] = [];
    const victim = 'cut-3';
    const { Billing, reached } = billingWithCut(subject, charges, victim, async (tx) => {
      const [{ pid }] = (await tx.query('SELECT pg_backend_pid() AS pid')).rows as Array<{ pid: number }>;
      // From another connection, as an operator or a failover would.
      await db.query('SELECT pg_terminate_backend($1)', [pid]);
    }, calls);
    const app = await startInboxApp(target, inbox, testNatsUrl(), [Billing], hooks.apps);
    const ids = Array.from({ length: 10 }, (_, i) => `cut-${i}`);
    for (const id of ids) await hooks.client.js.publish(subject, JSON.stringify({ id }), { msgID: id });
    await withDeadline(reached, 20_000, 'the victim in its transaction');
    await settled(stream, ids.length);
    await expectChargedOnce(charges, inbox, ids, victim);
    expect(calls.filter((c) => c.startsWith(`${victim}#`)).length).toBeGreaterThan(1);
    // One failed attempt, sent back for a retry; nothing given up.
    expect(app.logger.find('failed on', 'warn').map((l) => l.message)).toEqual([expect.stringMatching(new RegExp(`seq ${ids.indexOf(victim) + 1}, attempt 1\\).*redelivery in`))]);
    expect(app.logger.find(/./, 'error')).toEqual([]);
  }, 90_000);

  it('the server crashed mid-stream, one attempt between its INSERT and its COMMIT, then restarted: every order charged once', async () => {
    const { charges, inbox, stream, subject } = await scenario('restart');
    const calls: string[] = [];
    const victim = 'restart-60';
    const { Billing, reached, cutDone } = billingWithCut(subject, charges, victim, () => cluster.crash(), calls);
    const ids = Array.from({ length: 300 }, (_, i) => `restart-${i}`);
    for (const id of ids) await hooks.client.js.publish(subject, JSON.stringify({ id }), { msgID: id });
    const app = await startInboxApp(target, inbox, testNatsUrl(), [Billing], hooks.apps);
    await withDeadline(reached, 30_000, 'the victim in its transaction');
    // pg_ctl stop -w returns once the server is gone; a restart before that would leave it waiting.
    await withDeadline(cutDone, 60_000, 'the crash of the cluster');
    const crashedAt = Date.now();
    // Attempts that cannot begin their transaction wait for the database (logged once) instead of failing.
    const callsAtCrash = calls.length;
    await waitFor(() => app.logger.find('the database cannot be reached', 'warn').length === 1, {
      timeoutMs: 20_000,
      message: () => `the outage logged:\n${app.logger.text().slice(-2_000)}`,
    });
    await cluster.restart();
    const restartedAt = Date.now();
    const downForMs = restartedAt - crashedAt;
    await settled(stream, ids.length);
    const settledInMs = Date.now() - restartedAt;
    await expectChargedOnce(charges, inbox, ids, victim);
    const failedAttempts = app.logger.find('failed on', 'warn').length;
    expect(app.logger.find(/./, 'error')).toEqual([]);
    // Only the attempts inside a transaction when the server died failed (at most the concurrency).
    expect(failedAttempts).toBeGreaterThanOrEqual(1);
    expect(failedAttempts).toBeLessThanOrEqual(4);
    expect(app.logger.find('the database cannot be reached', 'warn')).toHaveLength(1);
    await waitFor(() => app.logger.find('the database answers again', 'log').length === 1, { timeoutMs: 10_000, message: 'the end of the outage logged' });
    process.stdout.write(
      `[inbox-crash] PostgreSQL crashed mid-attempt and restarted after ${downForMs} ms, all settled ${settledInMs} ms later: ${ids.length} orders, ${calls.length} handler calls ` +
        `(${callsAtCrash} before the crash), ${failedAttempts} failed attempts retried, every order charged once\n`,
    );
  }, 240_000);

  it('the app stopped while its messages wait for the database: they are handed back at once, and the next instance charges each once', async () => {
    const { charges, inbox, stream, subject } = await scenario('handback');
    const Billing = billingClass(subject, charges, { durable: 'billing', concurrency: 4 }, []);
    const first = await startInboxApp(target, inbox, testNatsUrl(), [Billing], hooks.apps);
    await cluster.crash();
    const ids = Array.from({ length: 10 }, (_, i) => `handback-${i}`);
    for (const id of ids) await hooks.client.js.publish(subject, JSON.stringify({ id }), { msgID: id });
    await waitFor(() => first.logger.find('the database cannot be reached', 'warn').length === 1, { timeoutMs: 20_000, message: 'the outage logged' });
    await first.close();
    // Handed back by the hold, not abandoned by the shutdown timeout.
    expect(first.logger.find('still running after', 'warn')).toEqual([]);
    await cluster.restart();
    const second = await startInboxApp(target, inbox, testNatsUrl(), [Billing], hooks.apps);
    await settled(stream, ids.length);
    expect(notOnce(await chargesPerOrder(target, charges), ids)).toEqual([]);
    expect(second.logger.find(/./, 'error')).toEqual([]);
  }, 120_000);

  it.each(['handler', 'handler with group commit', 'batch handler'])('down for longer than the whole retry budget, orders arriving meanwhile: nothing dead-lettered, none uses up an attempt, each charged once (%s)', async (kind) => {
    const { charges, inbox, stream, subject } = await scenario(kind === 'handler' ? 'outage' : kind === 'batch handler' ? 'boutage' : 'goutage');
    const dlq = uniqueName('DLQOUTAGE');
    // The default retry: 5 attempts, 1 s doubling, about 15 s from the first failure to a dead letter.
    const budgetMs = 1_000 + 2_000 + 4_000 + 8_000;
    const dlqOption = { stream: dlq, subject: `${dlq}.letters` };
    @Injectable()
    class SingleBilling {
      @OnEvent(subject, { durable: 'billing', inbox: true, concurrency: 4, dlq: dlqOption })
      async charge(order: { id: string }, ctx: EventContext, @InboxTransaction() tx: Tx): Promise<void> {
        await tx.query(`INSERT INTO ${charges} (order_id, attempt) VALUES ($1, $2)`, [order.id, ctx.attempt]);
      }
    }
    @Injectable()
    class BatchBilling {
      @OnEvent(subject, { durable: 'billing', inbox: true, batch: { maxMessages: 8, maxWaitMs: 100 }, dlq: dlqOption })
      async charge(orders: Array<{ id: string }>, batch: BatchContext, @InboxTransaction() tx: Tx): Promise<void> {
        for (const [i, o] of orders.entries()) await tx.query(`INSERT INTO ${charges} (order_id, attempt) VALUES ($1, $2)`, [o.id, batch.items[i].context.attempt]);
      }
    }
    const Billing = kind === 'batch handler' ? BatchBilling : SingleBilling;
    const app = await startInboxApp(target, inbox, testNatsUrl(), [Billing], hooks.apps, kind === 'handler with group commit');
    const before = Array.from({ length: 20 }, (_, i) => `before-${i}`);
    for (const id of before) await hooks.client.js.publish(subject, JSON.stringify({ id }), { msgID: id });
    await waitFor(async () => (await chargesPerOrder(target, charges)).size === before.length, { timeoutMs: 30_000, message: 'the first orders charged' });
    await cluster.crash();
    const crashedAt = Date.now();
    const during = Array.from({ length: 40 }, (_, i) => `during-${i}`);
    for (const id of during) await hooks.client.js.publish(subject, JSON.stringify({ id }), { msgID: id });
    await waitFor(() => app.logger.find('the database cannot be reached', 'warn').length === 1, {
      timeoutMs: 20_000,
      message: () => `the outage logged:\n${app.logger.text().slice(-2_000)}`,
    });
    // The outage is the scenario: it lasts past the retry budget (plus a margin for the attempts
    // that started late), which without the hold dead-lettered the orders that arrived meanwhile.
    await waitFor(() => Date.now() - crashedAt > budgetMs + 5_000, { timeoutMs: 60_000, intervalMs: 250, message: 'the outage outlasting the retry budget' });
    await cluster.restart();
    const downForMs = Date.now() - crashedAt;
    const ids = [...before, ...during];
    await settled(stream, ids.length);
    expect(notOnce(await chargesPerOrder(target, charges), ids)).toEqual([]);
    // Every order that came during the outage ran at its first delivery: none used up an attempt.
    const attempts = await db.query<{ order_id: string; attempt: number }>(`SELECT order_id, attempt FROM ${charges} WHERE order_id LIKE 'during-%' AND attempt <> 1`);
    expect(attempts).toEqual([]);
    const letters = await hooks.client.jsm.streams.info(dlq).then((i) => i.state.messages, () => 0);
    expect(letters).toBe(0);
    expect(app.logger.find('failed on', 'warn')).toEqual([]);
    expect(app.logger.find(/./, 'error')).toEqual([]);
    expect(app.logger.find('the database cannot be reached', 'warn')).toHaveLength(1);
    await waitFor(() => app.logger.find('the database answers again', 'log').length === 1, { timeoutMs: 10_000, message: 'the end of the outage logged' });
    process.stdout.write(`[inbox-crash] PostgreSQL down ${downForMs} ms (retry budget ${budgetMs} ms) under an inbox ${kind}: ${during.length} orders arrived meanwhile, 0 dead-lettered, all charged once at their first attempt\n`);
  }, 240_000);
});
