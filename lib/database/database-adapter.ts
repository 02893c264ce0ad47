/**
 * The one seam between the module and the user's database layer. The outbox writes its row
 * through the user's transaction handle (`Tx`: a node-postgres client inside BEGIN, a PGlite
 * transaction, a TypeORM EntityManager, ...), and the relay and the inbox run transactions of
 * their own. Everything the module says to the database is plain PostgreSQL through `SqlRunner`,
 * so an adapter is a few lines per driver and the SQL lives in one place per feature.
 */

/** Runs one statement with `$1`-style parameters and hands back the rows (empty without RETURNING). */
export interface SqlRunner {
  query<R extends object = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]>;
}

/** One statement and its `$1`-style parameters. */
export interface Statement {
  readonly sql: string;
  readonly params: readonly unknown[];
}

/** A LISTEN that stays open until closed or until its connection is lost. */
export interface Listening {
  close(): Promise<void>;
}

export interface DatabaseAdapter<Tx = unknown> {
  /** `pg`, `pglite`, ...: for logs and errors. */
  readonly driver: string;
  /**
   * True when `transaction` rejects if COMMIT found the transaction aborted (PostgreSQL rolls
   * back and answers ROLLBACK without an error; `TransactionRolledBackError`). Otherwise a caller
   * that must know checks with a statement before the COMMIT (the inbox's group commit does).
   */
  readonly commitReportsRollback?: boolean;
  /** SQL inside the caller's transaction; the caller commits or rolls back. */
  inTransaction(tx: Tx): SqlRunner;
  /**
   * A transaction of the module's own: committed when `work` resolves, rolled back when it throws.
   * With `first` (one statement or several), an adapter that can sends it in the same round trip
   * as BEGIN (node-postgres: one simple query; PGlite: one unprepared call) and hands the rows of
   * its last statement to `work` as `firstRows`. An adapter that cannot, or a wrapper that passes
   * on `work` only, leaves `firstRows` undefined, and the caller runs `first` itself: the inbox
   * claims its row this way.
   */
  transaction<T>(work: (sql: SqlRunner, tx: Tx, firstRows?: Array<Record<string, unknown>>) => Promise<T>, first?: Statement | readonly Statement[]): Promise<T>;
  /** One statement in a transaction of its own (autocommit). */
  query<R extends object = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /**
   * LISTEN on `channel`. `onNotify` runs for each notification; `onLost` once if the listening
   * connection fails, after which the caller listens again (with backoff) and polls meanwhile.
   */
  listen(channel: string, onNotify: () => void, onLost: (err: unknown) => void): Promise<Listening>;
}

/** An adapter over a database the module opened itself (`openDatabase`): it must be closed. */
export interface OwnedDatabase<Tx = unknown> extends DatabaseAdapter<Tx> {
  close(): Promise<void>;
}
