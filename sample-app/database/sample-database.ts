import { Logger } from '@nestjs/common';
import { openDatabase, type OwnedDatabase, type PgClientLike } from 'nestjs-jetstream';

/**
 * What the sample's services write through: a node-postgres client inside BEGIN, or a PGlite
 * transaction. Both answer `query(text, values)` with `{ rows }`, so one type fits either driver.
 */
export type SqlTransaction = Pick<PgClientLike, 'query'>;
export type SampleDatabase = OwnedDatabase<SqlTransaction>;

/** Injection token of the opened database (a provider of AppModule). */
export const SAMPLE_DATABASE = Symbol('SAMPLE_DATABASE');

// One schema of its own, so the sample never touches another app's tables on a shared server.
const SCHEMA = 'orders_sample';
export const TABLES = {
  orders: `${SCHEMA}.orders`,
  charges: `${SCHEMA}.charges`,
  outbox: `${SCHEMA}.jetstream_outbox`,
  inbox: `${SCHEMA}.jetstream_inbox`,
} as const;

/**
 * `DATABASE_URL` set: node-postgres on that server. Unset: PGlite (PostgreSQL in WASM) in
 * memory, so `npm run sample` needs no database server. Creates the sample's own tables; the
 * outbox and inbox tables come from `ensureSchema` of their modules.
 */
export async function openSampleDatabase(): Promise<SampleDatabase> {
  const url = process.env.DATABASE_URL || undefined;
  const db: SampleDatabase = await openDatabase({ url });
  new Logger('SampleDatabase').log(
    url ? `PostgreSQL at ${redact(url)} (node-postgres), schema ${SCHEMA}` : `PGlite in memory (no DATABASE_URL), schema ${SCHEMA}`,
  );
  try {
    await db.transaction(async (sql) => {
      // Two samples starting at once against one server take turns creating the schema.
      await sql.query(`SELECT pg_advisory_xact_lock(hashtextextended('nestjs-jetstream:sample-schema', 0))`);
      await sql.query(`CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`);
      await sql.query(
        `CREATE TABLE IF NOT EXISTS ${TABLES.orders} (
           id text PRIMARY KEY,
           customer_id text NOT NULL,
           total_cents integer NOT NULL,
           placed_at timestamptz NOT NULL
         )`,
      );
      // No unique constraint on order_id on purpose: a second charge of an order would be
      // stored, and the end-of-run check would count it. The inbox is what prevents it.
      await sql.query(
        `CREATE TABLE IF NOT EXISTS ${TABLES.charges} (
           id bigserial PRIMARY KEY,
           order_id text NOT NULL,
           amount_cents integer NOT NULL,
           charged_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
    });
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  return db;
}

export interface DatabaseCheck {
  /** Orders of this run found in the orders table. */
  readonly orders: number;
  /** Orders of this run with exactly one charge row. */
  readonly chargedOnce: number;
  /** Order id -> number of charge rows, for orders with a count other than one. */
  readonly wrong: ReadonlyArray<{ orderId: string; charges: number }>;
  /** Outbox rows neither published nor parked. */
  readonly pending: number;
  readonly parked: number;
}

export async function checkDatabase(db: SampleDatabase, orderIds: readonly string[]): Promise<DatabaseCheck> {
  const rows = await db.query<{ id: string; charges: string | number }>(
    `SELECT o.id, count(c.id) AS charges
       FROM ${TABLES.orders} o LEFT JOIN ${TABLES.charges} c ON c.order_id = o.id
      WHERE o.id = ANY($1::text[])
      GROUP BY o.id`,
    [orderIds],
  );
  const counts = new Map(rows.map((r) => [r.id, Number(r.charges)]));
  const wrong = orderIds
    .map((orderId) => ({ orderId, charges: counts.get(orderId) ?? 0 }))
    .filter((r) => r.charges !== 1);
  const [outbox] = await db.query<{ pending: string | number; parked: string | number }>(
    `SELECT count(*) FILTER (WHERE published_at IS NULL AND parked_at IS NULL) AS pending,
            count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked
       FROM ${TABLES.outbox}`,
  );
  return {
    orders: rows.length,
    chargedOnce: orderIds.length - wrong.length,
    wrong,
    pending: Number(outbox.pending),
    parked: Number(outbox.parked),
  };
}

/** Whether the database shows the run finished: every order charged once, nothing left to relay. */
export function databaseSettled(check: DatabaseCheck, expectedOrders: number): boolean {
  return check.orders === expectedOrders && check.wrong.length === 0 && check.pending === 0 && check.parked === 0;
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
