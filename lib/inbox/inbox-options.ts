import type { DatabaseAdapter } from '../database/database-adapter.js';
import { tableName, type TableName } from '../database/table-names.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import type { GroupCommitLimits } from './inbox-group-commit.js';

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
  /**
   * Group commit: inbox messages dispatched while a transaction is open share it: their keys
   * are claimed together with BEGIN, the handlers run one after another, and the group commits
   * once; each message is settled by its own outcome after that COMMIT. When a handler throws,
   * the group rolls back: that message alone follows its retry or dead-letter path, and the
   * others run again in a new transaction, so a handler of a group may be called more than once
   * (each message still commits exactly once, its writes with its inbox row). `true` takes
   * the defaults. Nothing waits for a group to fill, so a lone message commits alone; under load
   * a message waits for the handlers before it in its group (at most `maxMessages - 1`).
   * Suits handlers that only write to the database: a slow handler holds up its group.
   */
  groupCommit?: boolean | InboxGroupCommitOptions;
}

export interface InboxGroupCommitOptions {
  /** Most messages one transaction takes; default 16. */
  maxMessages?: number;
  /** Group transactions open at once (each holds a pooled connection); default 4, 1 on PGlite (one connection). */
  transactions?: number;
}

export interface ResolvedInboxOptions {
  readonly database: DatabaseAdapter;
  readonly table: TableName;
  readonly retentionMs: number;
  readonly cleanupIntervalMs: number;
  readonly ensureSchema: boolean;
  readonly groupCommit: GroupCommitLimits | undefined;
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
  const group = options.groupCommit;
  let groupCommit: GroupCommitLimits | undefined;
  if (group !== undefined && group !== false) {
    if (group !== true && (typeof group !== 'object' || group === null)) fail(`groupCommit must be a boolean or { maxMessages, transactions }, got ${JSON.stringify(group)}`);
    const given = group === true ? {} : group;
    const count = (value: unknown, fallback: number, name: string): number => {
      if (value === undefined) return fallback;
      if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) fail(`groupCommit.${name} must be a positive integer, got ${JSON.stringify(value)}`);
      return value as number;
    };
    // PGlite runs one transaction at a time: a second group would only wait for the first.
    groupCommit = { maxMessages: count(given.maxMessages, 16, 'maxMessages'), transactions: count(given.transactions, options.database.driver === 'pglite' ? 1 : 4, 'transactions') };
  }
  return { database: options.database, table, retentionMs, cleanupIntervalMs, ensureSchema: options.ensureSchema ?? false, groupCommit };
}
