import type { DatabaseAdapter, SqlRunner } from './database-adapter.js';
import { hasDatabaseErrorCode } from './database-errors.js';
import { derivedName, type TableName } from './table-names.js';

/**
 * The outbox table. `id` is the event's msg-id (the stream dedupes on it); `seq` orders events
 * (per key it is commit order, because publishing a keyed event locks its key until commit);
 * `parked_at`/`last_error` hold a row that can never be published. `seq` has no UNIQUE index:
 * its sequence makes it unique, and each relay mark (an UPDATE that is not HOT, as `published_at`
 * is in the partial indexes' predicates) inserted into it and checked it, 2-4 µs of database CPU
 * a row of the ~20 the claim costs (PostgreSQL 15, 20 000 rows). The partial indexes order by it.
 */
export function outboxDdl(table: TableName): string[] {
  const t = table.sql;
  return [
    ...schemaDdl(table),
    `CREATE TABLE IF NOT EXISTS ${t} (
  id text PRIMARY KEY,
  seq bigserial NOT NULL,
  subject text NOT NULL,
  payload bytea NOT NULL,
  headers jsonb,
  key text,
  created_at timestamptz NOT NULL DEFAULT now(),
  attempts integer NOT NULL DEFAULT 0,
  published_at timestamptz,
  stream text,
  stream_seq bigint,
  parked_at timestamptz,
  last_error text
)`,
    `CREATE INDEX IF NOT EXISTS "${derivedName(table, 'pending')}" ON ${t} (seq) WHERE published_at IS NULL AND parked_at IS NULL`,
    `CREATE INDEX IF NOT EXISTS "${derivedName(table, 'key')}" ON ${t} (key, seq) WHERE published_at IS NULL AND key IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS "${derivedName(table, 'published')}" ON ${t} (published_at) WHERE published_at IS NOT NULL`,
  ];
}

/**
 * The inbox table: one row per (consumer, idempotency key) handled. Owned by the inbox; here so
 * both tables share one naming rule and one `ensureSchema`.
 */
export function inboxDdl(table: TableName): string[] {
  const t = table.sql;
  return [
    ...schemaDdl(table),
    `CREATE TABLE IF NOT EXISTS ${t} (
  consumer text NOT NULL,
  msg_id text NOT NULL,
  handled_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, msg_id)
)`,
    `CREATE INDEX IF NOT EXISTS "${derivedName(table, 'handled')}" ON ${t} (handled_at)`,
  ];
}

function schemaDdl(table: TableName): string[] {
  return table.schema ? [`CREATE SCHEMA IF NOT EXISTS "${table.schema}"`] : [];
}

/**
 * Runs DDL statements in one transaction. Two instances starting at once may race on
 * `IF NOT EXISTS` (PostgreSQL checks the catalog before it locks), so a transaction-level
 * advisory lock makes them take turns.
 */
export async function ensureSchema(
  transaction: <T>(work: (sql: SqlRunner) => Promise<T>) => Promise<T>,
  statements: readonly string[],
): Promise<void> {
  await transaction(async (sql) => {
    await sql.query(`SELECT pg_advisory_xact_lock(hashtextextended('nestjs-jetstream:schema', 0))`);
    for (const statement of statements) await sql.query(statement);
  });
}

/**
 * Reads a table's columns at startup, so a missing table or a wrong database fails the app's
 * start, naming the table and the fix, and not its first message or checkout. `unavailable`
 * makes the module's own error from the explanation and the driver's error.
 */
export async function probeTable(
  database: Pick<DatabaseAdapter, 'query' | 'driver'>,
  table: TableName,
  use: { readonly kind: 'inbox' | 'outbox'; readonly columns: string; readonly ddl: string },
  unavailable: (detail: string, cause: unknown) => Error,
): Promise<void> {
  try {
    await database.query(`SELECT ${use.columns} FROM ${table.sql} LIMIT 0`);
  } catch (err) {
    throw unavailable(
      hasDatabaseErrorCode(err, '42P01')
        ? `the ${use.kind} table ${table.name} does not exist in the ${database.driver} database: create it with a migration (${use.ddl}() gives the statements) or set ensureSchema: true`
        : `the ${use.kind} table ${table.name} cannot be read in the ${database.driver} database`,
      err,
    );
  }
}
