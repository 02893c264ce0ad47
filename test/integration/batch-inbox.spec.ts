import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { headers as natsHeaders } from '@nats-io/transport-node';
import {
  DeadLetterService,
  IDEMPOTENCY_KEY_HEADER,
  InboxTransaction,
  JetStreamInboxModule,
  JetStreamModule,
  JetStreamPublisher,
  OnEvent,
  TerminalError,
  type BatchContext,
  type DatabaseAdapter,
  type OnEventOptions,
} from '../../lib/index.js';
import { testNatsUrl, waitFor } from '../harness/index.js';
import { CapturingLogger, startApp, type TestApp } from '../support/test-app.js';
import { openTestDatabase, type TestDatabase } from '../support/test-database.js';
import { freshStream, sharedServerHooks } from './kit.js';

/**
 * A batch handler with the inbox, on the run's database (DATABASE_URL's server, else PGlite):
 * the handler's writes and one inbox row per message commit in one transaction; keys with a row
 * are acked without reaching the handler; a throw rolls the batch back onto the retry path; a
 * message marked failed gets no row and is retried (or dead-lettered) alone.
 */
const hooks = sharedServerHooks();
let t: TestDatabase;

interface Tx {
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

interface Charge {
  id: string;
  qty: number;
}

beforeAll(async () => {
  t = await openTestDatabase('batchinbox');
  await t.db.query(`CREATE TABLE ${charges()} (order_id text NOT NULL, attempt int NOT NULL)`);
});
afterAll(async () => {
  await t?.close();
});

function charges(): string {
  return `"${t.schema}".charges`;
}

/** order id → its charge rows' attempts, for the ids starting with `prefix`. */
async function chargesOf(prefix: string): Promise<Map<string, number[]>> {
  const rows = await t.db.query<{ order_id: string; attempt: number }>(`SELECT order_id, attempt FROM ${charges()} WHERE order_id LIKE $1 ORDER BY order_id, attempt`, [`${prefix}%`]);
  const byId = new Map<string, number[]>();
  for (const r of rows) byId.set(r.order_id, [...(byId.get(r.order_id) ?? []), Number(r.attempt)]);
  return byId;
}

async function inboxRows(consumer: string): Promise<number> {
  const [row] = await t.db.query<{ n: string | number }>(`SELECT count(*) AS n FROM "${t.schema}".inbox WHERE consumer = $1`, [consumer]);
  return Number(row.n);
}

/** The adapter, with every statement it runs outside a transaction written down. */
function recordingStatements(db: DatabaseAdapter): { adapter: DatabaseAdapter; statements: string[] } {
  const statements: string[] = [];
  const adapter: DatabaseAdapter = {
    driver: db.driver,
    inTransaction: (tx) => db.inTransaction(tx),
    transaction: (work) => db.transaction(work),
    listen: (channel, onNotify, onLost) => db.listen(channel, onNotify, onLost),
    query: (sql, params) => {
      statements.push(sql);
      return db.query(sql, params);
    },
  };
  return { adapter, statements };
}

async function startInboxApp(handlers: unknown[], database: DatabaseAdapter = t.db): Promise<TestApp> {
  return hooks.apps.track(
    await startApp(
      {
        imports: [JetStreamModule.forRoot({ servers: testNatsUrl() }), JetStreamInboxModule.forRoot({ database, table: t.table('inbox'), ensureSchema: true })],
        providers: handlers as never[],
      },
      new CapturingLogger(),
    ),
  );
}

/** One multi-row INSERT for the batch, in the inbox transaction. */
async function chargeAll(tx: Tx, orders: Charge[], batch: BatchContext<Charge>, keep: (i: number) => boolean = () => true): Promise<void> {
  const rows = orders.map((o, i) => ({ o, attempt: batch.items[i].context.attempt })).filter((_, i) => keep(i));
  if (rows.length === 0) return;
  const values = rows.map((_, i) => `($${2 * i + 1}, $${2 * i + 2})`).join(', ');
  await tx.query(`INSERT INTO ${charges()} (order_id, attempt) VALUES ${values}`, rows.flatMap((r) => [r.o.id, r.attempt]));
}

/** Charges each batch, and retries a failure quickly for as long as it takes (the database coming back). */
function patientBilling(subject: string, calls: string[]) {
  @Injectable()
  class Billing {
    @OnEvent(subject, { durable: 'billing', inbox: true, retry: { maxAttempts: 1_000, initialDelayMs: 50, maxDelayMs: 200, jitter: false }, batch: { maxMessages: 20, maxWaitMs: 100 } })
    async charge(orders: Charge[], batch: BatchContext<Charge>, @InboxTransaction() tx: Tx): Promise<void> {
      calls.push(...orders.map((o) => o.id));
      await chargeAll(tx, orders, batch);
    }
  }
  return Billing;
}

async function settled(stream: string, durable: string, count: number, message: string): Promise<void> {
  await waitFor(
    async () => {
      const info = await hooks.client.jsm.consumers.info(stream, durable);
      return info.ack_floor.stream_seq === count && info.num_ack_pending === 0 && info.num_pending === 0;
    },
    { timeoutMs: 20_000, message },
  );
}

describe('batch handler with the inbox', () => {
  it('commits the batch’s writes with one inbox row per message; copies of handled keys are acked without reaching the handler, found with one query a batch', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'BINBOX');
    const seen: string[][] = [];
    @Injectable()
    class Billing {
      @OnEvent(subject('created'), { durable: 'billing', inbox: true, batch: { maxMessages: 50, maxWaitMs: 300 } })
      async charge(orders: Charge[], batch: BatchContext<Charge>, @InboxTransaction() tx: Tx): Promise<void> {
        seen.push(orders.map((o) => o.id));
        await chargeAll(tx, orders, batch);
      }
    }
    const { adapter, statements } = recordingStatements(t.db);
    // Each order twice in one backlog: the second copy (a new msg-id, the original's key, as a
    // redrive carries) shares a batch with the first, which runs alone.
    const publish = async (ids: string[], copy: string) => {
      const publisher = hooks.client.js;
      for (const id of ids) await publisher.publish(subject('created'), JSON.stringify({ id, qty: 1 }), { msgID: `${id}${copy}`, headers: keyHeader(id) });
    };
    const first = Array.from({ length: 10 }, (_, i) => `bi-${i}`);
    await publish(first, '');
    await publish(first, '-copy1');
    const app = await startInboxApp([Billing], adapter);
    await settled(stream, 'billing', 20, 'the first 20 messages acked');
    expect(seen.flat().sort()).toEqual([...first].sort());

    // Copies of handled keys among new orders: only the new ones reach the handler.
    const before = { calls: seen.length, lookups: statements.filter(isLookup).length };
    const fresh = Array.from({ length: 5 }, (_, i) => `bi-new-${i}`);
    await app.app.get(JetStreamPublisher).publishBatch([
      ...first.map((id) => ({ subject: subject('created'), payload: { id, qty: 1 }, options: { msgId: `${id}-copy2`, headers: { [IDEMPOTENCY_KEY_HEADER]: id } } })),
      ...fresh.map((id) => ({ subject: subject('created'), payload: { id, qty: 1 }, options: { msgId: id } })),
    ]);
    await settled(stream, 'billing', 35, 'all 35 messages acked');
    expect(seen.slice(before.calls).flat().sort()).toEqual(fresh);
    // One lookup per batch, not per message: 15 messages arrived within one or two batches.
    const lookups = statements.filter(isLookup).length - before.lookups;
    expect(lookups).toBeGreaterThanOrEqual(1);
    expect(lookups).toBeLessThanOrEqual(2);

    const charged = await chargesOf('bi-');
    expect([...charged.keys()].sort()).toEqual([...first, ...fresh].sort());
    expect([...charged.values()].every((attempts) => attempts.length === 1)).toBe(true);
    expect(await inboxRows(`${stream}.billing`)).toBe(15);
    expect((await hooks.client.jsm.consumers.info(stream, 'billing')).num_redelivered).toBe(0);
  });

  it('rolls the whole batch back when the handler throws after writing, and commits it once on the retry', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'BINBOXTHROW');
    @Injectable()
    class Billing {
      calls = 0;
      @OnEvent(subject('created'), { durable: 'billing', inbox: true, retry: { maxAttempts: 4, initialDelayMs: 50, jitter: false }, batch: { maxMessages: 20, maxWaitMs: 300 } })
      async charge(orders: Charge[], batch: BatchContext<Charge>, @InboxTransaction() tx: Tx): Promise<void> {
        this.calls++;
        await chargeAll(tx, orders, batch);
        // After its rows were written: the rollback must take them, and the inbox rows, away.
        if (batch.items.some((item) => item.context.attempt === 1)) throw new Error('ledger unavailable');
      }
    }
    const ids = Array.from({ length: 10 }, (_, i) => `bt-${i}`);
    for (const id of ids) await hooks.client.js.publish(subject('created'), JSON.stringify({ id, qty: 1 }), { msgID: id });
    const app = await startInboxApp([Billing]);
    await settled(stream, 'billing', ids.length, 'the batch acked after its retry');
    const charged = await chargesOf('bt-');
    expect([...charged.keys()].sort()).toEqual([...ids].sort());
    // Only the retry's rows: nothing of the first attempt committed.
    expect([...charged.values()].every((attempts) => attempts.length === 1 && attempts[0] === 2)).toBe(true);
    expect(await inboxRows(`${stream}.billing`)).toBe(ids.length);
    expect(app.app.get(Billing).calls).toBeGreaterThanOrEqual(2);
  });

  it('a message marked failed gets no inbox row: retryable ones come back alone and commit once, a TerminalError one is dead-lettered with nothing committed', async () => {
    const { stream, subject, dlq, dlqStream } = await freshStream(hooks.client.jsm, 'BINBOXFAIL');
    const calls = new Map<string, number>();
    @Injectable()
    class Billing {
      @OnEvent(subject('created'), { durable: 'billing', inbox: true, dlq, retry: { maxAttempts: 4, initialDelayMs: 50, jitter: false }, batch: { maxMessages: 20, maxWaitMs: 300 } })
      async charge(orders: Charge[], batch: BatchContext<Charge>, @InboxTransaction() tx: Tx): Promise<void> {
        const failed = new Set<number>();
        orders.forEach((o, i) => {
          calls.set(o.id, (calls.get(o.id) ?? 0) + 1);
          if (o.id === 'bf-poison') {
            batch.fail(i, new TerminalError('unknown account'));
            failed.add(i);
          } else if (o.qty % 4 === 0 && batch.items[i].context.attempt === 1) {
            batch.fail(i, new Error('card declined'));
            failed.add(i);
          }
        });
        // As the docs ask: nothing is written for a message marked failed.
        await chargeAll(tx, orders, batch, (i) => !failed.has(i));
      }
    }
    const ids = Array.from({ length: 12 }, (_, i) => `bf-${i}`);
    for (const [i, id] of ids.entries()) await hooks.client.js.publish(subject('created'), JSON.stringify({ id, qty: i }), { msgID: id });
    await hooks.client.js.publish(subject('created'), JSON.stringify({ id: 'bf-poison', qty: 1 }), { msgID: 'bf-poison' });
    const app = await startInboxApp([Billing]);
    await settled(stream, 'billing', ids.length + 1, 'every message acked or dead-lettered');
    const letters = await app.app.get(DeadLetterService).list({ stream: dlqStream });
    expect(letters.map((l) => l.reason)).toEqual(['terminal']);

    const charged = await chargesOf('bf-');
    expect([...charged.keys()].sort()).toEqual([...ids].sort());
    for (const [i, id] of ids.entries()) {
      // Marked failed on its first attempt: run again and committed on the second.
      expect({ id, attempts: charged.get(id), calls: calls.get(id) }).toEqual(i % 4 === 0 ? { id, attempts: [2], calls: 2 } : { id, attempts: [1], calls: 1 });
    }
    expect(calls.get('bf-poison')).toBe(1);
    expect(await inboxRows(`${stream}.billing`)).toBe(ids.length);
  });

  it('the inbox table unreadable mid-run: batches are retried with backoff, not dead-lettered or lost, and once it is back each order is charged once', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'BINBOXDOWN');
    const calls: string[] = [];
    const app = await startInboxApp([patientBilling(subject('created'), calls)]);
    // A real failure of the database: the table the lookup reads is gone while messages arrive.
    const inbox = `"${t.schema}".inbox`;
    await t.db.query(`ALTER TABLE ${inbox} RENAME TO inbox_away`);
    try {
      const ids = Array.from({ length: 10 }, (_, i) => `bd-${i}`);
      for (const id of ids) await app.app.get(JetStreamPublisher).publish(subject('created'), { id, qty: 1 }, { msgId: id });
      await waitFor(() => app.logger.find(/inbox lookup of a batch of \d+ failed/).length >= 3, { timeoutMs: 15_000, message: 'three failed lookups' });
      expect(calls).toEqual([]);
      await t.db.query(`ALTER TABLE "${t.schema}".inbox_away RENAME TO inbox`);
      await settled(stream, 'billing', ids.length, 'every message acked once the table is back');
      expect(calls.sort()).toEqual([...ids].sort());
      const charged = await chargesOf('bd-');
      expect([...charged.keys()].sort()).toEqual([...ids].sort());
      expect([...charged.values()].every((attempts) => attempts.length === 1 && attempts[0] > 1)).toBe(true);
    } finally {
      await t.db.query(`ALTER TABLE IF EXISTS "${t.schema}".inbox_away RENAME TO inbox`);
    }
  });

  it('the transaction failing in the database (its inbox rows refused): the whole batch rolls back and is retried, then commits once', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'BINBOXTXFAIL');
    const calls: string[] = [];
    const app = await startInboxApp([patientBilling(subject('created'), calls)]);
    // The database refuses this consumer's inbox rows: the claim, the transaction's first write, fails.
    const inbox = `"${t.schema}".inbox`;
    const consumer = `${stream}.billing`;
    await t.db.query(`CREATE FUNCTION "${t.schema}".refuse_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'inbox rows refused'; END $$`);
    await t.db.query(`CREATE TRIGGER refuse BEFORE INSERT ON ${inbox} FOR EACH ROW WHEN (NEW.consumer = '${consumer}') EXECUTE FUNCTION "${t.schema}".refuse_rows()`);
    try {
      const ids = Array.from({ length: 10 }, (_, i) => `bx-${i}`);
      for (const id of ids) await app.app.get(JetStreamPublisher).publish(subject('created'), { id, qty: 1 }, { msgId: id });
      await waitFor(() => app.logger.find(/inbox transaction of a batch of \d+ failed: .*inbox rows refused/).length >= 3, { timeoutMs: 15_000, message: 'three failed transactions' });
      expect(calls).toEqual([]);
      expect(await chargesOf('bx-')).toEqual(new Map());
      await t.db.query(`DROP TRIGGER refuse ON ${inbox}`);
      await settled(stream, 'billing', ids.length, 'every message acked once the rows are accepted');
      const charged = await chargesOf('bx-');
      expect([...charged.keys()].sort()).toEqual([...ids].sort());
      expect([...charged.values()].every((attempts) => attempts.length === 1)).toBe(true);
      expect(await inboxRows(consumer)).toBe(ids.length);
    } finally {
      await t.db.query(`DROP TRIGGER IF EXISTS refuse ON ${inbox}`);
    }
  });

  it('refuses batch with delivery other than the inbox’s exactly-once at startup', async () => {
    const { subject } = await freshStream(hooks.client.jsm, 'BINBOXBAD');
    const options: OnEventOptions = { durable: 'billing', inbox: true, delivery: 'at-most-once', batch: { maxMessages: 10 } };
    @Injectable()
    class Billing {
      @OnEvent(subject('created'), options)
      async charge(): Promise<void> {}
    }
    await expect(startInboxApp([Billing])).rejects.toThrow(/inbox is its own exactly-once delivery/);
  });
});

function keyHeader(id: string) {
  const h = natsHeaders();
  h.set(IDEMPOTENCY_KEY_HEADER, id);
  return h;
}

function isLookup(sql: string): boolean {
  return /SELECT msg_id FROM .* = ANY\(/.test(sql);
}
