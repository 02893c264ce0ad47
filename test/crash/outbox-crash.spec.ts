import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NatsServerProcess, deferred, testNatsUrl, uniqueName, waitFor, withDeadline } from '../harness/index.js';
import { ensureSchema, openDatabase, outboxDdl, tableName, type DatabaseAdapter, type OpenedDatabase } from '../../lib/index.js';
import { openTestDatabase, type TestDatabase } from '../support/test-database.js';
import { describeWithPrivatePostgres, PrivatePostgres } from '../support/private-postgres.js';
import { AppTracker, createStream, openClient, sharedServerHooks, type RawClient } from '../integration/kit.js';
import { lowerName, repeated, startOutboxApp, storedEvents, type OutboxApp } from '../integration/outbox-kit.js';

const APP = resolve(dirname(fileURLToPath(import.meta.url)), 'apps/outbox-app.mjs');

/** The app of apps/outbox-app.mjs in a child process this test owns, killed only by its pid. */
class OutboxChild {
  readonly committed: string[] = [];
  readonly output: string[] = [];
  private readonly exited = deferred<void>();
  private readonly lineWaiters: Array<{ line: string; resolve: () => void }> = [];

  constructor(private readonly child: ChildProcess) {
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop()!;
      for (const line of lines) {
        this.output.push(line);
        if (line.startsWith('committed ')) this.committed.push(line.slice(10));
        for (const w of this.lineWaiters.filter((x) => x.line === line)) w.resolve();
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => this.output.push(chunk.toString()));
    child.once('exit', () => this.exited.resolve());
  }

  static start(config: Record<string, unknown>): OutboxChild {
    const child = spawn(process.execPath, [APP], {
      env: { ...process.env, NODE_OPTIONS: '', OUTBOX_APP: JSON.stringify(config) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new OutboxChild(child);
  }

  async waitForLine(line: string, timeoutMs = 30_000): Promise<void> {
    if (this.output.includes(line)) return;
    const d = deferred<void>();
    this.lineWaiters.push({ line, resolve: () => d.resolve() });
    await withDeadline(Promise.race([d.promise, this.exited.promise.then(() => Promise.reject(new Error(`child exited before "${line}":\n${this.output.join('\n')}`)))]), timeoutMs, `child line "${line}"`);
  }

  async kill9(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited.promise;
  }
}

const quoted = (table: string) => table.replace(/^(\w+)\.(\w+)$/, '"$1"."$2"');

/**
 * Every row of the outbox table ends published, and the stream holds each row's msg-id exactly
 * once, and none of the events whose transaction rolled back ("rb-" ids, never committed).
 */
async function expectEveryRowOnce(db: DatabaseAdapter, client: RawClient, stream: string, table: string): Promise<{ rows: string[] }> {
  await waitFor(async () => (await db.query(`SELECT 1 FROM ${quoted(table)} WHERE published_at IS NULL`)).length === 0, {
    timeoutMs: 30_000,
    message: 'every row published',
  });
  const rows = (await db.query<{ id: string }>(`SELECT id FROM ${quoted(table)} ORDER BY seq`)).map((r) => r.id);
  const events = await storedEvents(client.js, client.jsm, stream);
  expect(repeated(events)).toEqual([]);
  expect(events.map((e) => e.msgId).sort()).toEqual([...rows].sort());
  expect(events.filter((e) => e.msgId.startsWith('rb-'))).toEqual([]);
  return { rows };
}

/**
 * Orders written one transaction each, without pause, until stopped, through whatever outage
 * the test causes; every 5th order also writes an event in a transaction that rolls back on
 * purpose. A failed order is counted and the next one attempted: an app keeps taking orders.
 */
function writeOrders(db: DatabaseAdapter, outbox: OutboxApp['outbox'], subject: string) {
  const committed: string[] = [];
  const failed: string[] = [];
  let stopped = false;
  const running = (async () => {
    for (let n = 0; !stopped; n++) {
      const id = `order-${n}`;
      try {
        await db.transaction((_sql, tx) => outbox.publish(tx, subject, { id }, { msgId: id, key: `customer-${n % 7}` }));
        committed.push(id);
      } catch {
        failed.push(id);
        // Pacing, not synchronisation: a refused connection fails at once, and an app retrying
        // in a hot loop would only measure how fast it can be refused.
        await delay(20);
      }
      if (n % 5 === 0) {
        await db
          .transaction(async (_sql, tx) => {
            await outbox.publish(tx, subject, { id: `rb-${n}` }, { msgId: `rb-${n}` });
            throw new Error('rolled back on purpose');
          })
          .catch(() => undefined);
      }
    }
  })();
  return {
    committed,
    failed,
    async stop(): Promise<void> {
      stopped = true;
      await running;
    },
  };
}

/** How long NATS stays down while orders are committed. */
const NATS_OUTAGE_MS = 10_000;

/** A figure for the docs, on stdout without jest's console decoration. */
function report(line: string): void {
  process.stdout.write(`[outbox-crash] ${line}\n`);
}

// Crash scenarios with real processes: the app or its relay SIGKILLed, the broker down, the
// database's connections cut. After each, every committed event is in the stream exactly once
// (by msg-id), and no rolled-back event ever is.
describe('transactional outbox under crashes', () => {
  const hooks = sharedServerHooks();
  const apps = hooks.apps;
  let t: TestDatabase;
  const children: OutboxChild[] = [];
  beforeEach(async () => {
    t = await openTestDatabase('outbox_crash', { onDisk: true });
  });
  afterEach(async () => {
    await Promise.allSettled(children.splice(0).map((c) => c.kill9()));
    await apps.closeAll();
    await t?.close();
  });

  const dbTarget = () => ('url' in t.target ? { url: t.target.url } : { dataDir: t.target.dataDir });

  const expectExactlyOnce = (client: RawClient, stream: string, table: string) => expectEveryRowOnce(t.db as DatabaseAdapter, client, stream, table);

  it('kill -9 of the app while it commits orders and relays them: the next relay publishes the rest, once each', async () => {
    const stream = uniqueName('CRASHAPP');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const table = t.table(lowerName('ob'));
    await t.release();
    const child = OutboxChild.start({ servers: testNatsUrl(), ...dbTarget(), table, subject: `${stream}.created`, write: 100_000, relay: { batchSize: 50, notify: false, pollIntervalMs: 300 } });
    children.push(child);
    await child.waitForLine('ready');
    // Killed between commits and publishes: some committed rows are published, some not yet.
    await waitFor(() => child.committed.length >= 150, { timeoutMs: 30_000, message: '150 commits in the child' });
    // Relaying every 300 ms while committing without pause: committed rows not yet published.
    if ('url' in t.target) {
      const probe = await openDatabase({ url: t.target.url, max: 1 });
      try {
        await waitFor(async () => (await probe.query(`SELECT 1 FROM ${quoted(table)} WHERE published_at IS NULL LIMIT 1`)).length > 0, {
          timeoutMs: 10_000,
          intervalMs: 5,
          message: 'a committed row not yet published',
        });
      } finally {
        await probe.close();
      }
    }
    await child.kill9();
    const db = (await t.reopen()) as DatabaseAdapter;
    const unpublished = await db.query(`SELECT 1 FROM ${quoted(table)} WHERE published_at IS NULL`);
    expect(unpublished.length).toBeGreaterThan(0);
    await startOutboxApp(apps, { servers: testNatsUrl(), database: db, table, relay: { pollIntervalMs: 200 } });
    const { rows } = await expectExactlyOnce(hooks.client, stream, table);
    const present = new Set(rows);
    expect(child.committed.filter((id) => !present.has(id))).toEqual([]);
  });

  it('kill -9 of a relay mid-batch: two relays racing take over, and the stream drops what was already stored', async () => {
    const stream = uniqueName('CRASHRELAY');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const table = t.table(lowerName('ob'));
    const db = t.db as DatabaseAdapter;
    // A backlog written with no relay running.
    const writer = await startOutboxApp(apps, { servers: testNatsUrl(), database: db, table, relay: false });
    const total = 3_000;
    for (let i = 0; i < total; i += 500) {
      await db.transaction(async (_sql, tx) => {
        for (let j = i; j < i + 500; j++) await writer.outbox.publish(tx, `${stream}.created`, { j }, { msgId: `ev-${j}` });
      });
    }
    await apps.closeAll();
    await t.release();
    const child = OutboxChild.start({ servers: testNatsUrl(), ...dbTarget(), table, subject: `${stream}.created`, write: 0, relay: { batchSize: 1_000 } });
    children.push(child);
    await waitFor(async () => (await hooks.client.jsm.streams.info(stream)).state.messages > 0, { timeoutMs: 30_000, intervalMs: 5, message: 'the relay publishing' });
    await child.kill9();
    const stored = (await hooks.client.jsm.streams.info(stream)).state.messages;
    const reopened = (await t.reopen()) as DatabaseAdapter;
    const marked = (await reopened.query(`SELECT 1 FROM ${quoted(table)} WHERE published_at IS NOT NULL`)).length;
    // Killed mid-batch: the stream holds events whose rows were never marked published.
    expect(stored).toBeGreaterThan(marked);
    const relays = [
      await startOutboxApp(apps, { servers: testNatsUrl(), database: reopened, table, relay: { pollIntervalMs: 200, batchSize: 200 } }),
      await startOutboxApp(apps, { servers: testNatsUrl(), database: reopened, table, relay: { pollIntervalMs: 200, batchSize: 200 } }),
    ];
    await expectExactlyOnce(hooks.client, stream, table);
    // The republished events the stream dropped as duplicates of what the killed relay stored.
    const dropped = relays.reduce((n, r) => n + r.host.relay!.stats.duplicates, 0);
    expect(dropped).toBe(stored - marked);
  });

  it('NATS down for 10 s while orders keep being committed: rows wait, then drain once each', async () => {
    const server = await NatsServerProcess.start();
    const client = await openClient(server.url);
    try {
      const stream = uniqueName('NATSDOWN');
      await client.jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
      const table = t.table(lowerName('ob'));
      const db = t.db as DatabaseAdapter;
      const app = await startOutboxApp(apps, {
        servers: server.url,
        database: db,
        table,
        relay: { pollIntervalMs: 100, backoffMs: { initial: 50, max: 500 } },
        module: { publishTimeoutMs: 500, publishRetries: 0 },
      });
      let i = 0;
      const write = async (n: number) => {
        for (const end = i + n; i < end; i++) {
          await db.transaction((_sql, tx) => app.outbox.publish(tx, `${stream}.created`, { i }, { msgId: `o-${i}`, key: `c-${i % 5}` }));
        }
      };
      await write(50);
      await waitFor(async () => (await client.jsm.streams.info(stream)).state.messages === 50, { timeoutMs: 15_000, message: 'first 50 relayed' });
      await client.close();
      await server.kill('SIGKILL');
      // Orders keep being committed for 10 s with the broker gone (the outage).
      const before = i;
      const downSince = Date.now();
      while (Date.now() - downSince < NATS_OUTAGE_MS) await write(10);
      await waitFor(() => app.logger.find('rows wait and are relayed when NATS answers', 'warn').length > 0, { timeoutMs: 15_000, message: 'the wait logged' });
      const writtenDuringOutage = i - before;
      await server.restart();
      const downForMs = Date.now() - downSince;
      expect(writtenDuringOutage).toBeGreaterThan(0);
      report(`NATS down ${downForMs} ms: ${writtenDuringOutage} orders committed during the outage, ${i} in all`);
      const again = await openClient(server.url);
      try {
        await waitFor(async () => (await again.jsm.streams.info(stream)).state.messages >= i, { timeoutMs: 30_000, message: `all ${i} relayed after the restart` });
        await expectExactlyOnce(again, stream, table);
        expect(app.logger.find('rows wait and are relayed when NATS answers', 'warn')).toHaveLength(1);
      } finally {
        await again.close();
      }
    } finally {
      await client.close();
      await apps.closeAll();
      await server.stop();
    }
  });

  it("the database's connections cut under the relay: it backs off, logs once, and relays when the database answers", async () => {
    const stream = uniqueName('DBDOWN');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const table = t.table(lowerName('ob'));
    let relayDb: OpenedDatabase;
    let outage: () => Promise<void>;
    let closePglite = async (): Promise<void> => undefined;
    let dropRole = async (): Promise<void> => undefined;
    if ('url' in t.target) {
      // PostgreSQL: the relay connects as a role of its own; the outage forbids that role to log
      // in and terminates its backends, so every reconnect is refused until it is allowed again.
      // The shared server and every other session on it stay up.
      const role = lowerName('relay');
      const admin = t.db as DatabaseAdapter;
      await admin.query(`CREATE ROLE "${role}" LOGIN`);
      await ensureSchema(admin.transaction, outboxDdl(tableName(table, 'table')));
      await admin.query(`GRANT USAGE ON SCHEMA "${t.schema}" TO "${role}"`);
      await admin.query(`GRANT ALL ON ALL TABLES IN SCHEMA "${t.schema}" TO "${role}"`);
      await admin.query(`GRANT ALL ON ALL SEQUENCES IN SCHEMA "${t.schema}" TO "${role}"`);
      dropRole = async () => {
        await admin.query(`DROP OWNED BY "${role}" CASCADE`);
        await admin.query(`DROP ROLE "${role}"`);
      };
      const url = new URL(t.target.url);
      url.username = role;
      relayDb = await openDatabase({ url: url.toString() });
      outage = async () => {
        await admin.query(`ALTER ROLE "${role}" NOLOGIN`);
        await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
        await waitFor(() => app.logger.find('relay cannot reach the database', 'error').length > 0, { timeoutMs: 10_000, message: 'the outage seen' });
        await write(20, 20);
        await admin.query(`ALTER ROLE "${role}" LOGIN`);
      };
    } else {
      // PGlite is in-process: the outage is the database closed under the relay, then opened
      // again from its files (a restart, with its crash recovery).
      const dataDir = t.target.dataDir;
      await t.release();
      let current = await openDatabase({ dataDir });
      closePglite = () => current.close();
      const delegate: OpenedDatabase = {
        driver: 'pglite',
        inTransaction: (tx: never) => current.inTransaction(tx),
        transaction: (work: never) => current.transaction(work),
        query: (sql: string, params?: readonly unknown[]) => current.query(sql, params),
        listen: (c: string, n: () => void, l: (e: unknown) => void) => current.listen(c, n, l),
        close: () => current.close(),
      } as unknown as OpenedDatabase;
      relayDb = delegate;
      outage = async () => {
        await current.close();
        await waitFor(() => app.logger.find('relay cannot reach the database', 'error').length > 0, { timeoutMs: 10_000, message: 'the outage seen' });
        current = await openDatabase({ dataDir });
        await write(20, 20);
      };
    }
    let app!: Awaited<ReturnType<typeof startOutboxApp>>;
    // PostgreSQL: the app's writes go on through another role while the relay's is locked out.
    const writerDb = 'url' in t.target ? (t.db as DatabaseAdapter) : relayDb;
    let write!: (n: number, from: number) => Promise<void>;
    try {
      app = await startOutboxApp(apps, {
        servers: testNatsUrl(),
        database: relayDb,
        table,
        ensureSchema: !('url' in t.target),
        relay: { pollIntervalMs: 100, backoffMs: { initial: 50, max: 300 } },
      });
      write = (n: number, from: number) =>
        writerDb.transaction(async (_sql, tx) => {
          for (let i = from; i < from + n; i++) await app.outbox.publish(tx as never, `${stream}.created`, { i }, { msgId: `d-${i}` });
        });
      await write(20, 0);
      await waitFor(async () => (await hooks.client.jsm.streams.info(stream)).state.messages === 20, { timeoutMs: 15_000, message: 'first 20 relayed' });
      await outage();
      await waitFor(() => app.logger.find('database reachable again', 'log').length > 0, { timeoutMs: 20_000, message: 'the relay back' });
      await waitFor(async () => (await hooks.client.jsm.streams.info(stream)).state.messages === 40, { timeoutMs: 20_000, message: 'all 40 relayed' });
      expect(app.logger.find('relay cannot reach the database', 'error')).toHaveLength(1);
      const events = await storedEvents(hooks.client.js, hooks.client.jsm, stream);
      expect(repeated(events)).toEqual([]);
    } finally {
      await apps.closeAll();
      if ('url' in t.target) {
        await relayDb.close();
        await dropRole();
      } else await closePglite();
    }
  });
});

// The database server itself crashes and comes back: a cluster of this file's own, stopped with
// `pg_ctl stop -m immediate` (every backend killed, no checkpoint) while the app keeps taking
// orders and its relay is publishing, then started again (crash recovery from the WAL). It runs
// on every machine with the PostgreSQL binaries, whatever DATABASE_URL says.
describeWithPrivatePostgres('transactional outbox: PostgreSQL restarted', (bin) => {
  const hooks = sharedServerHooks();
  const apps = hooks.apps;
  let cluster: PrivatePostgres;
  const opened: OpenedDatabase[] = [];
  beforeAll(async () => {
    cluster = await PrivatePostgres.start(bin());
  }, 180_000);
  afterEach(async () => {
    await apps.closeAll();
    await Promise.allSettled(opened.splice(0).map((db) => db.close()));
    // A test that failed while the cluster was down must not fail the next one too.
    await cluster?.ensureRunning();
  });
  afterAll(async () => {
    await cluster?.destroy();
  });

  /** A pool on the cluster, closed after the test. */
  async function pool(): Promise<OpenedDatabase> {
    const db = await openDatabase({ url: cluster.url });
    opened.push(db);
    return db;
  }

  it('a crash of the server mid-stream, orders still attempted, a restart: every committed order once in the stream, no rolled-back one', async () => {
    const stream = uniqueName('PGRESTART');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const table = lowerName('ob');
    const db = await pool();
    const app = await startOutboxApp(apps, {
      servers: testNatsUrl(),
      database: db,
      table,
      relay: { pollIntervalMs: 200, backoffMs: { initial: 50, max: 500 }, batchSize: 50 },
    });
    const orders = writeOrders(db, app.outbox, `${stream}.created`);
    try {
      await waitFor(async () => orders.committed.length >= 200 && (await hooks.client.jsm.streams.info(stream)).state.messages > 0, {
        timeoutMs: 30_000,
        message: 'orders committed and relayed before the crash',
      });
      await cluster.crash();
      const crashedAt = Date.now();
      const committedBefore = orders.committed.length;
      const failedBefore = orders.failed.length;
      // The app goes on attempting orders against the dead server, and the relay sees the outage.
      await waitFor(() => orders.failed.length >= failedBefore + 20, { timeoutMs: 20_000, message: 'orders attempted during the outage' });
      await waitFor(() => app.logger.find(/: relay /, 'error').length > 0, {
        timeoutMs: 60_000,
        message: () => `the relay to log the outage; it logged:\n${app.logger.text().slice(-3_000)}`,
      });
      expect(app.logger.find(/: relay /, 'error').map((l) => l.message)).toEqual([expect.stringContaining('relay cannot reach the database')]);
      await cluster.restart();
      const downForMs = Date.now() - crashedAt;
      const attemptedDuringOutage = orders.failed.length - failedBefore;
      await waitFor(() => orders.committed.length >= committedBefore + 200, { timeoutMs: 60_000, message: 'orders committed again after the restart' });
      await orders.stop();
      await waitFor(() => app.logger.find('database reachable again', 'log').length > 0, { timeoutMs: 30_000, message: 'the relay back' });
      const { rows } = await expectEveryRowOnce(db, hooks.client, stream, table);
      // What the app saw committed is there; an order whose COMMIT was cut by the crash may or
      // may not be (its outcome is the database's): either way the stream matches the table.
      const present = new Set(rows);
      expect(orders.committed.filter((id) => !present.has(id))).toEqual([]);
      expect(rows.filter((id) => id.startsWith('rb-'))).toEqual([]);
      expect(app.logger.find('relay cannot reach the database', 'error')).toHaveLength(1);
      report(
        `PostgreSQL crashed (pg_ctl stop -m immediate) and restarted after ${downForMs} ms: ${attemptedDuringOutage} orders refused during the outage, ` +
          `${orders.committed.length} committed in all, ${rows.length} rows = ${rows.length} events in the stream, none twice`,
      );
    } finally {
      await orders.stop();
    }
  }, 120_000);

  it('two relays, each on its own pool, racing on one table while orders are committed: every row once, no duplicate ack, both relay', async () => {
    const stream = uniqueName('PGRACE');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const table = lowerName('ob');
    // Each relay on a pool of its own, as two app instances are.
    const writerDb = await pool();
    const writer = await startOutboxApp(apps, { servers: testNatsUrl(), database: writerDb, table, relay: false });
    const relays: OutboxApp[] = [];
    for (let r = 0; r < 2; r++) {
      relays.push(await startOutboxApp(apps, { servers: testNatsUrl(), database: await pool(), table, relay: { pollIntervalMs: 100, batchSize: 20 } }));
    }
    const orders = writeOrders(writerDb, writer.outbox, `${stream}.created`);
    try {
      await waitFor(() => relays.every((r) => r.host.relay!.stats.published >= 50), { timeoutMs: 60_000, message: 'both relays publishing' });
    } finally {
      await orders.stop();
    }
    const { rows } = await expectEveryRowOnce(writerDb, hooks.client, stream, table);
    expect(rows.length).toBeGreaterThanOrEqual(orders.committed.length);
    // SKIP LOCKED: no row was claimed by both, so the stream never had to drop a copy.
    expect(relays.map((r) => r.host.relay!.stats.duplicates)).toEqual([0, 0]);
    expect(relays.reduce((n, r) => n + r.host.relay!.stats.published, 0)).toBe(rows.length);
    report(`two relays racing: ${rows.length} rows, published ${relays.map((r) => r.host.relay!.stats.published).join(' + ')}, duplicate acks 0`);
  }, 120_000);
});
