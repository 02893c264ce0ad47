import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Injectable } from '@nestjs/common';
import { StorageType } from '@nats-io/jetstream';
import {
  ensureSchema,
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
async function runUntilKilled(db: TestDatabase, config: Record<string, unknown>): Promise<string[]> {
  await db.release();
  const output: string[] = [];
  const env = { INBOX_WORKER: JSON.stringify({ servers: testNatsUrl(), database: db.target, ...config }) };
  const child = spawn(process.execPath, [WORKER], { env: { ...process.env, NODE_OPTIONS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = deferred<{ code: number | null; signal: NodeJS.Signals | null }>();
  child.once('exit', (code, signal) => exited.resolve({ code, signal }));
  child.stdout.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const exit = await withDeadline(exited.promise, 30_000, 'the worker to die after its commit').catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  await db.reopen();
  const committed = /COMMITTED (\[.*\])/.exec(output.join(''));
  expect({ exit, output: committed ? 'committed' : output.join('') }).toEqual({ exit: { code: null, signal: 'SIGKILL' }, output: 'committed' });
  return JSON.parse(committed![1]) as string[];
}

/** Waits until the second instance acked all `count` messages of the stream. */
async function allAcked(stream: string, durable: string, count: number): Promise<void> {
  await waitFor(
    async () => {
      const i = await hooks.client.jsm.consumers.info(stream, durable);
      return i.ack_floor.stream_seq === count && i.num_ack_pending === 0;
    },
    { timeoutMs: 20_000, message: 'the second instance settled everything' },
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
async function prepare(t: TestDatabase, prefix: string): Promise<{ charges: string; inbox: string }> {
  const charges = t.table(`${prefix}_charges`);
  await t.db.query(`CREATE TABLE ${charges} (order_id text NOT NULL, attempt int NOT NULL)`);
  const inbox = t.table(`${prefix}_inbox`);
  await ensureSchema((work) => t.db.transaction((sql) => work(sql)), inboxDdl(tableName(inbox, 'table')));
  return { charges, inbox };
}

/** order id → how many charge rows it has; every id must end with exactly one. */
async function chargesPerOrder(t: TestDatabase, charges: string): Promise<Map<string, number>> {
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

async function startInboxApp(t: TestDatabase, inbox: string, servers: string, providers: unknown[], tracker: { track(app: TestApp): TestApp }): Promise<TestApp> {
  return tracker.track(
    await startApp(
      {
        imports: [JetStreamModule.forRoot({ servers, shutdownTimeoutMs: 2_000 }), JetStreamInboxModule.forRoot({ database: t.db, table: inbox })],
        providers: providers as never[],
      },
      new CapturingLogger(),
    ),
  );
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
  }, 60_000);

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
  }, 60_000);

  it('two instances on one durable, every order published twice: each charged once', async () => {
    const { charges, inbox } = await prepare(t, 'two');
    const stream = uniqueName('INBOXTWO');
    const subject = `${stream}.created`;
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const calls: string[] = [];
    const Billing = billingClass(subject, charges, { durable: 'billing', concurrency: 8 }, calls);
    const a = await startInboxApp(t, inbox, testNatsUrl(), [Billing], hooks.apps);
    await startInboxApp(t, inbox, testNatsUrl(), [Billing], hooks.apps);
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
