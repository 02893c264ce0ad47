import type { DatabaseAdapter, Listening, SqlRunner, Statement } from './database-adapter.js';
import { inlineScript, oneByOne } from './sql-script.js';

/** The parts of a PGlite transaction the adapter uses (PGlite's `Transaction` fits). */
export interface PgliteTransactionLike {
  query(query: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
  /** Statements without parameters, unprepared: one call into PGlite where `query` makes several. */
  exec?(query: string): Promise<Array<{ rows: unknown[] }>>;
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
  const runnerOf = (handle: PgliteTransactionLike): SqlRunner => {
    const runner: SqlRunner = {
      query: async <R extends object>(sql: string, params?: readonly unknown[]) =>
        (await handle.query(sql, params as unknown[] | undefined)).rows as R[],
      async script(statements) {
        const inlined = handle.exec ? inlineScript(statements) : undefined;
        if (inlined === undefined || !handle.exec) return oneByOne(runner, statements);
        return (await handle.exec(inlined.text)).map((r) => r.rows as Array<Record<string, unknown>>);
      },
    };
    return runner;
  };
  return {
    driver: 'pglite',
    inTransaction: runnerOf,
    query: (sql, params) => runnerOf(db).query(sql, params),
    transaction: <T>(work: (sql: SqlRunner, tx: PgliteTransactionLike, firstRows?: Array<Record<string, unknown>>) => Promise<T>, first?: Statement | readonly Statement[]) =>
      db.transaction(async (tx) => {
        const inlined = first && tx.exec ? inlineScript(first) : undefined;
        if (inlined === undefined || !tx.exec) return work(runnerOf(tx), tx);
        const results = await tx.exec(inlined.text);
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
