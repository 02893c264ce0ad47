import type { DatabaseAdapter } from '../database/database-adapter.js';
import { tableName, type TableName } from '../database/table-names.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';

/** Table of handled message keys, unless `table` names another. */
export const DEFAULT_INBOX_TABLE = 'jetstream_inbox';

export interface JetStreamInboxOptions {
  /**
   * The database inbox handlers commit through, as an adapter of its driver or ORM:
   * `pgAdapter(pool)`, `pgliteAdapter(db)`, `typeormAdapter(dataSource)`, `kyselyAdapter(db)`.
   * Its transaction handle is what `@InboxTransaction()` hands to the handler.
   */
  database: DatabaseAdapter;
  /** Default `jetstream_inbox`; may be schema-qualified (`billing.jetstream_inbox`). */
  table?: string;
  /**
   * How long a handled key is remembered; default 7 days. A copy of a message arriving later
   * than this (a redrive of an old dead letter, a republish) runs the handler again.
   */
  retentionMs?: number;
  /** How often expired rows are deleted; default every minute (at most a tenth of the retention). */
  cleanupIntervalMs?: number;
  /** Create the table (and its index) at startup when missing; default false (ship the DDL in a migration). */
  ensureSchema?: boolean;
}

export interface ResolvedInboxOptions {
  readonly database: DatabaseAdapter;
  readonly table: TableName;
  readonly retentionMs: number;
  readonly cleanupIntervalMs: number;
  readonly ensureSchema: boolean;
}

const DAY = 86_400_000;

export function resolveInboxOptions(options: JetStreamInboxOptions): ResolvedInboxOptions {
  const fail = (message: string): never => {
    throw new InvalidOptionsError(`JetStreamInboxModule: ${message}`);
  };
  if (!options || typeof options !== 'object') fail(`options must be an object with a database, got ${JSON.stringify(options)}`);
  const db = options.database as Partial<DatabaseAdapter> | undefined;
  if (!db || typeof db.transaction !== 'function' || typeof db.query !== 'function' || typeof db.inTransaction !== 'function') {
    fail('database must be a database adapter (pgAdapter(pool), pgliteAdapter(db), typeormAdapter(dataSource), kyselyAdapter(db), ...)');
  }
  const table = tableName(options.table ?? DEFAULT_INBOX_TABLE, 'JetStreamInboxModule table');
  const positive = (value: unknown, fallback: number, name: string): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) fail(`${name} must be a positive integer (milliseconds), got ${JSON.stringify(value)}`);
    return value as number;
  };
  const retentionMs = positive(options.retentionMs, 7 * DAY, 'retentionMs');
  const cleanupIntervalMs = positive(options.cleanupIntervalMs, Math.max(1_000, Math.min(60_000, Math.floor(retentionMs / 10))), 'cleanupIntervalMs');
  if (options.ensureSchema !== undefined && typeof options.ensureSchema !== 'boolean') fail('ensureSchema must be a boolean');
  return { database: options.database, table, retentionMs, cleanupIntervalMs, ensureSchema: options.ensureSchema ?? false };
}
