import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import {
  IDEMPOTENCY_KEY_HEADER,
  InboxTransaction,
  InvalidOptionsError,
  JetStreamInbox,
  JetStreamInboxModule,
  JetStreamModule,
  JetStreamPublisher,
  OnEvent,
  type EventContext,
} from '../../lib/index.js';
import { testNatsUrl, waitFor } from '../harness/index.js';
import { CapturingLogger, startApp } from '../support/test-app.js';
import { openTestDatabase, type TestDatabase } from '../support/test-database.js';
import { freshStream, sharedServerHooks } from './kit.js';

/**
 * Group commit (`JetStreamInboxModule.forRoot({ groupCommit })`) on the run's database
 * (DATABASE_URL's server, else PGlite): messages that wait together share a transaction, and
 * each still commits its rows with its inbox row or not at all, whatever its neighbours do. The
 * messages are published before the app starts, so they wait together and groups form.
 */
const hooks = sharedServerHooks();
let t: TestDatabase;
const ORDERS = 40;

interface Tx {
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

beforeAll(async () => {
  t = await openTestDatabase('inbox_group');
  // txid: which transaction committed the row, to see that groups formed.
  await t.db.query(`CREATE TABLE ${charges()} (order_id text NOT NULL, attempt int NOT NULL, txid bigint NOT NULL)`);
  // A unique check deferred to COMMIT: a row 'boom' makes a transaction that adds another fail there.
  await t.db.query(`CREATE TABLE ${deferred()} (k text UNIQUE DEFERRABLE INITIALLY DEFERRED)`);
  await t.db.query(`INSERT INTO ${deferred()} (k) VALUES ('boom')`);
});
afterAll(async () => {
  await t?.close();
});

function charges(): string {
  return `"${t.schema}".charges`;
}
function deferred(): string {
  return `"${t.schema}".deferred`;
}

/** Orders of `prefix` charged other than exactly once (none: `[]`). */
async function notChargedOnce(prefix: string, ids: string[]): Promise<string[]> {
  const rows = await t.db.query<{ order_id: string; n: string | number }>(`SELECT order_id, count(*) AS n FROM ${charges()} WHERE order_id LIKE $1 GROUP BY order_id`, [`${prefix}%`]);
  const counts = new Map(rows.map((r) => [r.order_id, Number(r.n)]));
  return [...ids.filter((id) => counts.get(id) !== 1), ...[...counts.keys()].filter((id) => !ids.includes(id))];
}

async function transactionsOf(prefix: string): Promise<number> {
  const [row] = await t.db.query<{ n: string | number }>(`SELECT count(DISTINCT txid) AS n FROM ${charges()} WHERE order_id LIKE $1`, [`${prefix}%`]);
  return Number(row.n);
}

async function inboxRows(consumer: string): Promise<number> {
  const [row] = await t.db.query<{ n: string | number }>(`SELECT count(*) AS n FROM "${t.schema}".inbox WHERE consumer = $1`, [consumer]);
  return Number(row.n);
}

type Hook = (order: { id: string }, ctx: EventContext, tx: Tx) => Promise<void> | void;

/**
 * Publishes `ORDERS` orders `<prefix>-<i>` (and `copies` of the first ones, same inbox key), then
 * starts an app whose handler charges each in the inbox transaction and runs `hook` after.
 */
async function run(prefix: string, hook: Hook, copies = 0) {
  const { stream, subject } = await freshStream(hooks.client.jsm, `GROUP${prefix.toUpperCase()}`);
  const ids = Array.from({ length: ORDERS }, (_, i) => `${prefix}-${i}`);
  const calls: string[] = [];
  @Injectable()
  class Billing {
    @OnEvent(subject('created'), { durable: 'billing', inbox: true, concurrency: 16, retry: { maxAttempts: 5, initialDelayMs: 50, jitter: false } })
    async charge(order: { id: string }, ctx: EventContext, @InboxTransaction() tx: Tx): Promise<void> {
      calls.push(`${order.id}#${ctx.attempt}`);
      await tx.query(`INSERT INTO ${charges()} (order_id, attempt, txid) VALUES ($1, $2, txid_current())`, [order.id, ctx.attempt]);
      await hook(order, ctx, tx);
    }
  }
  const seed = hooks.apps.track(await startApp({ imports: [JetStreamModule.forRoot({ servers: testNatsUrl() })] }));
  const publisher = seed.app.get(JetStreamPublisher);
  await publisher.publishBatch(ids.map((id) => ({ subject: subject('created'), payload: { id }, options: { msgId: id } })));
  await publisher.publishBatch(ids.slice(0, copies).map((id) => ({ subject: subject('created'), payload: { id }, options: { msgId: `${id}-copy`, headers: { [IDEMPOTENCY_KEY_HEADER]: id } } })));
  await hooks.apps.track(
    await startApp(
      {
        imports: [
          JetStreamModule.forRoot({ servers: testNatsUrl() }),
          JetStreamInboxModule.forRoot({ database: t.db, table: t.table('inbox'), ensureSchema: true, groupCommit: { maxMessages: 8 } }),
        ],
        providers: [Billing],
      },
      new CapturingLogger(),
    ),
  );
  await waitFor(
    async () => {
      const info = await hooks.client.jsm.consumers.info(stream, 'billing');
      return info.ack_floor.stream_seq === ORDERS + copies && info.num_ack_pending === 0 && info.num_pending === 0;
    },
    { timeoutMs: 30_000, message: 'every message acked' },
  );
  return { ids, calls, consumer: `${stream}.billing` };
}

describe('inbox group commit', () => {
  it('shares transactions between waiting messages, commits each once with its row, and acks copies of a handled key without a call', async () => {
    const { ids, calls, consumer } = await run('grp', () => undefined, 10);
    expect(await notChargedOnce('grp-', ids)).toEqual([]);
    expect(await inboxRows(consumer)).toBe(ORDERS);
    // No failure, so no handler ran twice; the copies never reached it.
    expect(calls.length).toBe(ORDERS);
    // Groups formed: fewer transactions than messages.
    expect(await transactionsOf('grp-')).toBeLessThan(ORDERS);
  });

  it('a handler of the group throws: it is rolled back and retried alone, every order charged once', async () => {
    const { ids, calls, consumer } = await run('thr', ({ id }, ctx) => {
      if (id === 'thr-13' && ctx.attempt === 1) throw new Error('card declined');
    });
    expect(await notChargedOnce('thr-', ids)).toEqual([]);
    expect(calls).toEqual(expect.arrayContaining(['thr-13#1', 'thr-13#2']));
    const [row] = await t.db.query<{ attempt: number }>(`SELECT attempt FROM ${charges()} WHERE order_id = 'thr-13'`);
    expect(Number(row.attempt)).toBe(2);
    expect(await inboxRows(consumer)).toBe(ORDERS);
    expect(await transactionsOf('thr-')).toBeLessThan(ORDERS);
  });

  it('a handler leaves the transaction aborted (it caught a failed statement): its message fails and is retried, none is acked without its rows', async () => {
    const { ids, calls, consumer } = await run('abt', async ({ id }, ctx, tx) => {
      if (id !== 'abt-7' || ctx.attempt !== 1) return;
      await tx.query(`SELECT * FROM "${t.schema}".no_such_table`).catch(() => undefined);
    });
    // Without the check, COMMIT would have rolled the group back in silence and acked it.
    expect(await notChargedOnce('abt-', ids)).toEqual([]);
    expect(calls).toEqual(expect.arrayContaining(['abt-7#1', 'abt-7#2']));
    expect(await inboxRows(consumer)).toBe(ORDERS);
  });

  it('the COMMIT fails (a deferred constraint): no message of the group is acked, each is retried and charged once', async () => {
    const { ids, calls, consumer } = await run('cmt', async ({ id }, ctx, tx) => {
      if (id === 'cmt-5' && ctx.attempt === 1) await tx.query(`INSERT INTO ${deferred()} (k) VALUES ('boom')`);
    });
    expect(await notChargedOnce('cmt-', ids)).toEqual([]);
    expect(calls).toContain('cmt-5#2');
    expect(await inboxRows(consumer)).toBe(ORDERS);
  });

  it('refuses groupCommit limits that are not positive integers', () => {
    expect(() => new JetStreamInbox({ database: t.db, groupCommit: { maxMessages: 0 } })).toThrow(InvalidOptionsError);
    expect(() => new JetStreamInbox({ database: t.db, groupCommit: { transactions: 1.5 } })).toThrow(/groupCommit.transactions must be a positive integer/);
    expect(() => new JetStreamInbox({ database: t.db, groupCommit: 'yes' as never })).toThrow(/groupCommit must be a boolean/);
  });
});
