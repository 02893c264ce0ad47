import type { DatabaseAdapter, Listening, SqlRunner, Statement } from './database-adapter.js';
import { inlineScript } from './sql-script.js';
import { BYTEA_OID, parseBytea } from './parse-bytea.js';

/**
 * PGlite's own bytea parser calls `parseInt` on each byte's two hex digits: for the outbox
 * relay's claim (256 rows of a 126-byte payload) it took ~40% of the claim's CPU, all of it on
 * the app's thread. Node's hex decoder does the same work natively: 111 -> 62 CPU-µs a claimed row.
 */
const OPTIONS: PgliteQueryOptions = { parsers: { [BYTEA_OID]: parseBytea } };

/** The parts of a PGlite transaction the adapter uses (PGlite's `Transaction` fits). */
export interface PgliteTransactionLike {
  query(query: string, params?: unknown[], options?: PgliteQueryOptions): Promise<{ rows: unknown[] }>;
  /** Statements without parameters, unprepared: one call into PGlite where `query` makes several. */
  exec?(query: string, options?: PgliteQueryOptions): Promise<Array<{ rows: unknown[] }>>;
}

/** The part of PGlite's query options the adapter sets: parsers by type oid. */
export interface PgliteQueryOptions {
  parsers?: Record<number, (value: string) => unknown>;
}

/** The parts of a PGlite instance the adapter uses, so `@electric-sql/pglite` stays optional. */
export interface PgliteLike extends PgliteTransactionLike {
  transaction<T>(callback: (tx: PgliteTransactionLike) => Promise<T>): Promise<T>;
  listen(channel: string, callback: (payload: string) => void): Promise<() => Promise<void>>;
  readonly closed?: boolean;
}

/**
 * PGlite is one in-process connection: its transactions run one at a time, and LISTEN/NOTIFY
 * works within the process. `Tx` is the handle `db.transaction(async (tx) => ...)` gives.
 */
export function pgliteAdapter(db: PgliteLike): DatabaseAdapter<PgliteTransactionLike> {
  const runnerOf = (handle: PgliteTransactionLike): SqlRunner => ({
    query: async <R extends object>(sql: string, params?: readonly unknown[]) =>
      (await handle.query(sql, params as unknown[] | undefined, OPTIONS)).rows as R[],
  });
  return {
    driver: 'pglite',
    inTransaction: runnerOf,
    query: (sql, params) => runnerOf(db).query(sql, params),
    transaction: <T>(work: (sql: SqlRunner, tx: PgliteTransactionLike, firstRows?: Array<Record<string, unknown>>) => Promise<T>, first?: Statement | readonly Statement[]) =>
      db.transaction(async (tx) => {
        const inlined = first && tx.exec ? inlineScript(first) : undefined;
        if (inlined === undefined || !tx.exec) return work(runnerOf(tx), tx);
        const results = await tx.exec(inlined.text, OPTIONS);
        return work(runnerOf(tx), tx, results[results.length - 1].rows as Array<Record<string, unknown>>);
      }),
    async listen(channel, onNotify): Promise<Listening> {
      // In-process: there is no connection to lose short of closing the database itself.
      const unlisten = await db.listen(channel, () => onNotify());
      return {
        close: async () => {
          if (!db.closed) await unlisten();
        },
      };
    },
  };
}
