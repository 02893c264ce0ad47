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
  /** SQL inside the caller's transaction; the caller commits or rolls back. */
  inTransaction(tx: Tx): SqlRunner;
  /** A transaction of the module's own: committed when `work` resolves, rolled back when it throws. */
  transaction<T>(work: (sql: SqlRunner, tx: Tx) => Promise<T>): Promise<T>;
  /**
   * Optional: `transaction`, with `first` as its first statement sent in the same round trip as
   * BEGIN where the driver can (node-postgres sends both as one simple query; PGlite runs it
   * unprepared). The inbox claims its row this way: one round trip fewer per message. Without
   * it, callers run `first` through `transaction`'s runner.
   */
  transactionStartingWith?<R extends object, T>(first: Statement, work: (firstRows: R[], sql: SqlRunner, tx: Tx) => Promise<T>): Promise<T>;
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
