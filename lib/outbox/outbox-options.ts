import type { DatabaseAdapter } from '../database/database-adapter.js';
import { derivedName, tableName, type TableName } from '../database/table-names.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';

export interface OutboxRelayOptions {
  /** Rows claimed per transaction; default 256. */
  batchSize?: number;
  /**
   * Batch transactions one relay runs at once, at most; default 4. Each claims other rows (SKIP
   * LOCKED), so one batch's database round trips overlap another's publishes. More than one
   * runs only while batches come back full, or when rows are committed while every batch is
   * publishing. PGlite runs them in turn.
   */
  concurrency?: number;
  /** Publishes awaiting their ack at once within a batch (distinct keys); default 256. */
  window?: number;
  /** Polling when no NOTIFY arrives (and the fallback when LISTEN is lost); default 1 000 ms. */
  pollIntervalMs?: number;
  /** LISTEN for the NOTIFY each committed publish sends; default true. */
  notify?: boolean;
  /** Published rows are deleted after this long; default 24 h. Parked rows are kept. */
  retentionMs?: number;
  /** How often published rows past the retention are deleted; default 60 000 ms. */
  cleanupIntervalMs?: number;
  /** Backoff while the database or NATS is unreachable: first and longest wait; default 100 and 5 000 ms. */
  backoffMs?: { initial?: number; max?: number };
  /**
   * The longest time a row can stay published-but-unmarked before some relay claims it again:
   * the longest time every relay of the app may be down at once, plus one batch. The stream's
   * `duplicate_window` must be at least this long, or a republish after such a crash is stored
   * twice; the relay checks it on each stream's first publish and warns. Default 120 000 ms
   * (JetStream's default duplicate window).
   */
  republishWindowMs?: number;
}

export interface OutboxOptions<Tx = unknown> {
  /** The user's database layer: `pgAdapter(pool)`, `pgliteAdapter(db)`, or one's own. */
  database: DatabaseAdapter<Tx>;
  /** Table name, optionally schema-qualified; default `jetstream_outbox`. */
  table?: string;
  /** Create the table and its indexes at startup when missing (a quick start; use migrations in production). */
  ensureSchema?: boolean;
  /** The relay of this app instance; `false` for an instance that only writes rows. Default on. */
  relay?: OutboxRelayOptions | false;
}

export interface ResolvedRelayOptions {
  readonly batchSize: number;
  readonly concurrency: number;
  readonly window: number;
  readonly pollIntervalMs: number;
  readonly notify: boolean;
  readonly retentionMs: number;
  readonly cleanupIntervalMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly republishWindowMs: number;
}

export interface ResolvedOutboxOptions<Tx = unknown> {
  readonly database: DatabaseAdapter<Tx>;
  readonly table: TableName;
  /** The NOTIFY channel of this table. */
  readonly channel: string;
  readonly ensureSchema: boolean;
  readonly relay: ResolvedRelayOptions | false;
}

export function resolveOutboxOptions<Tx>(options: OutboxOptions<Tx>): ResolvedOutboxOptions<Tx> {
  if (!options || typeof options !== 'object') throw new InvalidOptionsError('outbox options must be an object');
  const db = options.database as Partial<DatabaseAdapter<Tx>> | undefined;
  if (!db || typeof db.transaction !== 'function' || typeof db.inTransaction !== 'function') {
    throw new InvalidOptionsError('outbox.database must be a DatabaseAdapter: pgAdapter(pool), pgliteAdapter(db) or openDatabase()');
  }
  const table = tableName(options.table ?? 'jetstream_outbox', 'outbox.table');
  const relay = options.relay === false ? false : resolveRelay(options.relay ?? {});
  return { database: options.database, table, channel: derivedName(table, 'notify'), ensureSchema: options.ensureSchema === true, relay };
}

function resolveRelay(o: OutboxRelayOptions): ResolvedRelayOptions {
  const int = (value: number | undefined, fallback: number, name: string, min: number): number => {
    const v = value ?? fallback;
    if (!Number.isInteger(v) || v < min) throw new InvalidOptionsError(`outbox.relay.${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
    return v;
  };
  const backoffInitialMs = int(o.backoffMs?.initial, 100, 'backoffMs.initial', 1);
  return {
    batchSize: int(o.batchSize, 256, 'batchSize', 1),
    concurrency: int(o.concurrency, 4, 'concurrency', 1),
    window: int(o.window, 256, 'window', 1),
    pollIntervalMs: int(o.pollIntervalMs, 1_000, 'pollIntervalMs', 1),
    notify: o.notify ?? true,
    retentionMs: int(o.retentionMs, 24 * 3_600_000, 'retentionMs', 0),
    cleanupIntervalMs: int(o.cleanupIntervalMs, 60_000, 'cleanupIntervalMs', 1),
    backoffInitialMs,
    backoffMaxMs: Math.max(backoffInitialMs, int(o.backoffMs?.max, 5_000, 'backoffMs.max', 1)),
    republishWindowMs: int(o.republishWindowMs, 120_000, 'republishWindowMs', 0),
  };
}
