import { Registry } from 'prom-client';
import {
  InvalidOptionsError,
  InvalidSubjectError,
  OutboxUnavailableError,
  PayloadEncodingError,
  PayloadTooLargeError,
  type DatabaseAdapter,
} from '../../lib/index.js';
import { freeLoopbackPort, NatsServerProcess, testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { openTestDatabase, type TestDatabase } from '../support/test-database.js';
import { createStream, sharedServerHooks } from './kit.js';
import { lowerName, repeated, startOutboxApp, storedEvents } from './outbox-kit.js';

// The outbox on the run's database (DATABASE_URL's PostgreSQL, else PGlite) and the shared server.
describe('transactional outbox', () => {
  const hooks = sharedServerHooks();
  const apps = hooks.apps;
  let t: TestDatabase;
  let db: DatabaseAdapter;
  beforeAll(async () => {
    t = await openTestDatabase('outbox');
    db = t.db as DatabaseAdapter;
  });
  afterAll(async () => {
    await t?.close();
  });

  async function setup(relay: Parameters<typeof startOutboxApp>[1]['relay'] = {}, extra: Partial<Parameters<typeof startOutboxApp>[1]> = {}) {
    const stream = uniqueName('OUTBOX');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const table = t.table(lowerName('ob'));
    const app = await startOutboxApp(apps, { servers: testNatsUrl(), database: db, table, relay, ...extra });
    return { stream, table, subject: (s: string) => `${stream}.${s}`, ...app };
  }

  const rowsOf = (table: string) =>
    db.query<{ id: string; published: boolean; parked: boolean; last_error: string | null }>(
      `SELECT id, published_at IS NOT NULL AS published, parked_at IS NOT NULL AS parked, last_error FROM ${table.replace(/^(\w+)\.(\w+)$/, '"$1"."$2"')} ORDER BY seq`,
    );

  it('publishes a committed event once, with its msgId as Nats-Msg-Id, and never a rolled-back one', async () => {
    const s = await setup();
    await expect(
      db.transaction(async (_sql, tx) => {
        await s.outbox.publish(tx, s.subject('created'), { id: 'rolled' }, { msgId: 'order-rolled-back' });
        throw new Error('the business change failed');
      }),
    ).rejects.toThrow('the business change failed');
    const result = await db.transaction((_sql, tx) =>
      s.outbox.publish(tx, s.subject('created'), { id: 'o-1' }, { msgId: 'order-1', headers: { 'x-tenant': 'acme' } }),
    );
    expect(result).toEqual({ msgId: 'order-1', recorded: true });
    // The same msgId again records nothing: a retried operation cannot publish twice.
    const again = await db.transaction((_sql, tx) => s.outbox.publish(tx, s.subject('created'), { id: 'o-1' }, { msgId: 'order-1' }));
    expect(again.recorded).toBe(false);
    await waitFor(async () => (await rowsOf(s.table)).every((r) => r.published), { timeoutMs: 15_000, message: 'the row marked published' });
    const events = await storedEvents(hooks.client.js, hooks.client.jsm, s.stream);
    expect(events.map((e) => [e.msgId, e.data, e.headers['x-tenant']])).toEqual([['order-1', '{"id":"o-1"}', ['acme']]]);
    expect((await rowsOf(s.table)).map((r) => r.id)).toEqual(['order-1']);
  });

  it('fails startup on a missing table, naming the table and the fix, and leaves no NATS connection open', async () => {
    // A server of its own with monitoring: its connz counts the connections the failed app left.
    const monitor = await freeLoopbackPort();
    const server = await NatsServerProcess.start({ args: ['-m', String(monitor), '--addr', '127.0.0.1'] });
    const connections = async () => ((await (await fetch(`http://127.0.0.1:${monitor}/connz`)).json()) as { num_connections: number }).num_connections;
    try {
      const table = t.table(lowerName('missing'));
      const start = () => startOutboxApp(apps, { servers: server.url, database: db, table, ensureSchema: false });
      await expect(start()).rejects.toThrow(OutboxUnavailableError);
      await expect(start()).rejects.toThrow(
        /the outbox table \S*missing_\w+ does not exist in the (pg|pglite) database: create it with a migration \(outboxDdl\(\) gives the statements\) or set ensureSchema: true/,
      );
      // Nest runs no shutdown hook when startup fails: a connection left open would keep the app's process alive.
      await waitFor(async () => (await connections()) === 0, { timeoutMs: 10_000, message: 'no connection left by the failed starts' });
    } finally {
      await server.stop();
    }
  });

  it('refuses bad input before anything is written, so the transaction rolls back with a clear error', async () => {
    const s = await setup(false);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const cases: Array<[string, (tx: unknown) => Promise<unknown>, new (...a: never[]) => Error, RegExp]> = [
      ['wildcard subject', (tx) => s.outbox.publish(tx, s.subject('*'), {}), InvalidSubjectError, /wildcards/],
      ['empty token', (tx) => s.outbox.publish(tx, `${s.stream}..x`, {}), InvalidSubjectError, /empty tokens/],
      ['whitespace', (tx) => s.outbox.publish(tx, `${s.stream}.a b`, {}), InvalidSubjectError, /whitespace/],
      ['circular payload', (tx) => s.outbox.publish(tx, s.subject('x'), circular), PayloadEncodingError, /circular/i],
      ['BigInt payload', (tx) => s.outbox.publish(tx, s.subject('x'), { n: 1n }), PayloadEncodingError, /BigInt/],
      ['function payload', (tx) => s.outbox.publish(tx, s.subject('x'), () => 1), PayloadEncodingError, /cannot be encoded/],
      ['payload over max_payload', (tx) => s.outbox.publish(tx, s.subject('x'), 'x'.repeat(2 * 1024 * 1024)), PayloadTooLargeError, /max_payload/],
      ['empty msgId', (tx) => s.outbox.publish(tx, s.subject('x'), {}, { msgId: '' }), InvalidOptionsError, /msgId must be a non-empty string/],
      ['key not a string', (tx) => s.outbox.publish(tx, s.subject('x'), {}, { key: 42 as unknown as string }), InvalidOptionsError, /key must be/],
      ['bad header name', (tx) => s.outbox.publish(tx, s.subject('x'), {}, { headers: { 'a b': 'v' } }), InvalidOptionsError, /invalid header name/],
      ['header with a line break', (tx) => s.outbox.publish(tx, s.subject('x'), {}, { headers: { a: 'v\r\nX: y' } }), InvalidOptionsError, /line breaks/],
      ['Nats-Msg-Id header', (tx) => s.outbox.publish(tx, s.subject('x'), {}, { headers: { 'Nats-Msg-Id': 'x' } }), InvalidOptionsError, /msgId option/],
    ];
    for (const [name, call, type, message] of cases) {
      const attempt = db.transaction(async (sql, tx) => {
        await sql.query(`SELECT 1`);
        await call(tx);
      });
      await expect(attempt).rejects.toBeInstanceOf(type);
      await expect(attempt).rejects.toThrow(message);
      expect([name, (await rowsOf(s.table)).length]).toEqual([name, 0]);
    }
  });

  it('parks an event no stream captures, with its error and the metric, while other events flow', async () => {
    const registry = new Registry();
    const s = await setup({ pollIntervalMs: 200 }, { module: { metrics: { registry } } });
    const orphan = `${uniqueName('NOSTREAM')}.created`;
    await db.transaction(async (_sql, tx) => {
      await s.outbox.publish(tx, orphan, { lost: false }, { msgId: 'orphan-1' });
      await s.outbox.publish(tx, s.subject('created'), { n: 1 }, { msgId: 'fine-1' });
    });
    await waitFor(async () => (await rowsOf(s.table)).every((r) => r.published || r.parked), { timeoutMs: 15_000, message: 'both rows settled' });
    const rows = await rowsOf(s.table);
    expect(rows.map((r) => [r.id, r.published, r.parked])).toEqual([['orphan-1', false, true], ['fine-1', true, false]]);
    expect(rows[0].last_error).toMatch(/^no_stream: .*No JetStream stream captures subject/);
    const metric = await registry.getSingleMetric('nats_outbox_parked_total')!.get();
    expect(metric.values).toEqual([expect.objectContaining({ value: 1, labels: { subject: orphan, reason: 'no_stream' } })]);
    expect(s.logger.find('can never be published and is parked', 'error')).toHaveLength(1);
    expect((await storedEvents(hooks.client.js, hooks.client.jsm, s.stream)).map((e) => e.msgId)).toEqual(['fine-1']);
  });

  it('parks an event larger than the stream takes; later events of its key wait (logged), other keys go on', async () => {
    const stream = uniqueName('SMALL');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`], { max_msg_size: 256 });
    const table = t.table(lowerName('ob'));
    const s = await startOutboxApp(apps, { servers: testNatsUrl(), database: db, table, relay: { pollIntervalMs: 200 } });
    await db.transaction(async (_sql, tx) => {
      await s.outbox.publish(tx, `${stream}.a`, { blob: 'x'.repeat(1_000) }, { msgId: 'k1-big', key: 'k1' });
      await s.outbox.publish(tx, `${stream}.a`, { n: 2 }, { msgId: 'k1-next', key: 'k1' });
      await s.outbox.publish(tx, `${stream}.a`, { n: 1 }, { msgId: 'k2-1', key: 'k2' });
    });
    await waitFor(async () => (await rowsOf(table)).some((r) => r.parked) && (await rowsOf(table)).some((r) => r.published), {
      timeoutMs: 15_000,
      message: 'the big row parked and k2 published',
    });
    await waitFor(() => s.logger.find('wait behind parked event k1-big', 'warn').length > 0, { timeoutMs: 10_000, message: 'the wait logged' });
    const rows = await rowsOf(table);
    expect(rows.map((r) => [r.id, r.published, r.parked])).toEqual([['k1-big', false, true], ['k1-next', false, false], ['k2-1', true, false]]);
    expect(rows[0].last_error).toMatch(/^too_large: /);
    // Once the operator deals with the parked row (here: deletes it), the key moves on.
    await db.query(`DELETE FROM ${table.replace(/^(\w+)\.(\w+)$/, '"$1"."$2"')} WHERE id = 'k1-big'`);
    await waitFor(async () => (await rowsOf(table)).every((r) => r.published), { timeoutMs: 15_000, message: 'k1-next published' });
    expect((await storedEvents(hooks.client.js, hooks.client.jsm, stream)).map((e) => e.msgId)).toEqual(['k2-1', 'k1-next']);
  });

  it("parks an event the connection's user may not publish, as permission_denied; allowed events flow", async () => {
    const server = await NatsServerProcess.start({
      config: [
        'authorization {',
        '  users = [',
        '    { user: relay, password: "relay-pw", permissions: { publish: { allow: [">"], deny: ["SECRET.>"] } } }',
        '  ]',
        '}',
      ].join('\n'),
    });
    try {
      const table = t.table(lowerName('ob'));
      const s = await startOutboxApp(apps, {
        servers: server.url,
        database: db,
        table,
        relay: { pollIntervalMs: 200 },
        module: { connection: { user: 'relay', pass: 'relay-pw' }, streams: [{ name: 'OPEN', subjects: ['OPEN.>', 'SECRET.>'] }] },
      });
      await db.transaction(async (_sql, tx) => {
        await s.outbox.publish(tx, 'SECRET.plans', { n: 1 }, { msgId: 'denied-1' });
        await s.outbox.publish(tx, 'OPEN.news', { n: 2 }, { msgId: 'allowed-1' });
      });
      await waitFor(async () => (await rowsOf(table)).every((r) => r.published || r.parked), { timeoutMs: 20_000, message: 'both rows settled' });
      const rows = await rowsOf(table);
      expect(rows.map((r) => [r.id, r.published, r.parked])).toEqual([['denied-1', false, true], ['allowed-1', true, false]]);
      expect(rows[0].last_error).toMatch(/^permission_denied: .*Permissions Violation for Publish to "SECRET\.plans"/);
    } finally {
      await apps.closeAll();
      await server.stop();
    }
  });

  it('wakes on NOTIFY: a committed event is relayed without waiting for the poll', async () => {
    const s = await setup({ pollIntervalMs: 600_000 });
    // The first empty poll ran at startup; from now on only a NOTIFY can wake the relay.
    await waitFor(() => s.host.relay!.stats.batches >= 1, { timeoutMs: 10_000, message: "the first (empty) batch" });
    await db.transaction((_sql, tx) => s.outbox.publish(tx, s.subject('created'), { n: 1 }, { msgId: 'notified-1' }));
    await waitFor(async () => (await rowsOf(s.table)).every((r) => r.published), { timeoutMs: 15_000, message: 'relayed on NOTIFY' });
  });

  it('polls when NOTIFY is off', async () => {
    const s = await setup({ notify: false, pollIntervalMs: 100 });
    await db.transaction((_sql, tx) => s.outbox.publish(tx, s.subject('created'), { n: 1 }, { msgId: 'polled-1' }));
    await waitFor(async () => (await rowsOf(s.table)).every((r) => r.published), { timeoutMs: 15_000, message: 'relayed by polling' });
  });

  it('deletes published rows after the retention, and keeps parked ones', async () => {
    const s = await setup({ retentionMs: 0, cleanupIntervalMs: 100, pollIntervalMs: 100 });
    await db.transaction(async (_sql, tx) => {
      await s.outbox.publish(tx, s.subject('created'), { n: 1 }, { msgId: 'kept-briefly' });
      await s.outbox.publish(tx, `${uniqueName('NOSTREAM')}.x`, { n: 2 }, { msgId: 'parked-kept' });
    });
    await waitFor(async () => (await rowsOf(s.table)).map((r) => r.id).join() === 'parked-kept', { timeoutMs: 15_000, message: 'the published row deleted' });
    expect((await storedEvents(hooks.client.js, hooks.client.jsm, s.stream)).map((e) => e.msgId)).toEqual(['kept-briefly']);
  });

  it("warns at the first publish to a stream whose duplicate_window is shorter than the republish window", async () => {
    const stream = uniqueName('SHORTDUP');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`], { duplicate_window: 1_000_000_000 });
    const table = t.table(lowerName('ob'));
    const s = await startOutboxApp(apps, { servers: testNatsUrl(), database: db, table, relay: { republishWindowMs: 60_000 } });
    await db.transaction((_sql, tx) => s.outbox.publish(tx, `${stream}.a`, {}, { msgId: 'dup-check' }));
    await waitFor(() => s.logger.find(`stream "${stream}" has a duplicate_window of 1000 ms`, 'warn').length === 1, {
      timeoutMs: 15_000,
      message: 'the duplicate_window warning',
    });
  });

  it('checks the duplicate_window of the streams the app declares at startup, before anything is relayed', async () => {
    const stream = uniqueName('DECLARED');
    const table = t.table(lowerName('ob'));
    const s = await startOutboxApp(apps, {
      servers: testNatsUrl(),
      database: db,
      table,
      relay: { republishWindowMs: 60_000 },
      module: { streams: [{ name: stream, subjects: [`${stream}.>`], duplicate_window: 2_000_000_000 }] },
    });
    // Logged during startup: the app is up, nothing was ever written to the outbox.
    expect(s.logger.find(`stream "${stream}" has a duplicate_window of 2000 ms`, 'warn')).toHaveLength(1);
    await hooks.client.jsm.streams.delete(stream);
  });

  it('keeps per-key commit order with 3 relays and 1 000 keys, and publishes every event exactly once', async () => {
    const stream = uniqueName('ORDER');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const table = t.table(lowerName('ob'));
    const relays: Awaited<ReturnType<typeof startOutboxApp>>[] = [];
    for (let i = 0; i < 3; i++) {
      relays.push(await startOutboxApp(apps, { servers: testNatsUrl(), database: db, table, relay: { batchSize: 200, pollIntervalMs: 200 } }));
    }
    const keys = 1_000;
    const perKey = 3;
    // Writers commit concurrently: 20 writers, each transaction 10 events of 10 different keys.
    const jobs: Array<[number, number]> = [];
    for (let n = 0; n < perKey; n++) for (let k = 0; k < keys; k++) jobs.push([k, n]);
    let next = 0;
    const writer = async () => {
      while (next < jobs.length) {
        const chunk = jobs.slice(next, (next += 10));
        await db.transaction(async (_sql, tx) => {
          for (const [k, n] of chunk) await relays[k % 3].outbox.publish(tx, `${stream}.k${k}`, { k, n }, { msgId: `k${k}-${n}`, key: `k${k}` });
        });
      }
    };
    await Promise.all(Array.from({ length: 20 }, writer));
    await waitFor(async () => (await hooks.client.jsm.streams.info(stream)).state.messages >= keys * perKey, {
      timeoutMs: 60_000,
      message: `${keys * perKey} events in the stream`,
    });
    const events = await storedEvents(hooks.client.js, hooks.client.jsm, stream);
    expect(events).toHaveLength(keys * perKey);
    expect(repeated(events)).toEqual([]);
    const lastOfKey = new Map<number, number>();
    const disorder: string[] = [];
    for (const e of events) {
      const { k, n } = JSON.parse(e.data) as { k: number; n: number };
      if ((lastOfKey.get(k) ?? -1) !== n - 1) disorder.push(`${e.msgId} after n=${lastOfKey.get(k)}`);
      lastOfKey.set(k, n);
    }
    expect(disorder).toEqual([]);
    // On PostgreSQL the relays share the rows (SKIP LOCKED); PGlite is one connection that runs
    // transactions one at a time, so whichever relay's batch runs first takes what is there.
    if (t.kind === 'pg') expect(relays.filter((r) => r.host.relay!.stats.published > 0).length).toBeGreaterThan(1);
    expect(relays.reduce((sum, r) => sum + r.host.relay!.stats.duplicates, 0)).toBe(0);
  });
});
