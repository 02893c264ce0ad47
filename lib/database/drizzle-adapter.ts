import { loadPeer } from '../observability/load-peer.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import type { DatabaseAdapter, SqlRunner } from './database-adapter.js';
import { pgAdapter, type PgPoolLike } from './pg-adapter.js';
import { pgliteAdapter, type PgliteLike } from './pglite-adapter.js';

/** A drizzle query: what `sql` builds. Opaque here. */
type DrizzleSql = object;

/** The parts of a Drizzle database or transaction the adapter uses (node-postgres and PGlite fit). */
export interface DrizzleExecutorLike {
  execute(query: never): PromiseLike<unknown>;
}

export interface DrizzleDatabaseLike extends DrizzleExecutorLike {
  transaction<T>(run: (tx: DrizzleExecutorLike) => Promise<T>): Promise<T>;
  /** The driver's client Drizzle was built on: a `pg.Pool` or a PGlite instance. */
  readonly $client: unknown;
}

interface DrizzleModule {
  sql: { raw(text: string): DrizzleSql; join(chunks: DrizzleSql[]): DrizzleSql; param(value: unknown): DrizzleSql } & ((strings: TemplateStringsArray, ...values: unknown[]) => DrizzleSql);
}

/**
 * Drizzle on node-postgres (`drizzle-orm/node-postgres`) or PGlite (`drizzle-orm/pglite`): `Tx`
 * is Drizzle's transaction, so the handler's inserts and updates commit with the inbox row.
 * `drizzle-orm` is loaded on the first statement. Chosen among the ORMs the issue names because it
 * runs on both of this module's databases (TypeORM has no PGlite driver; Kysely needs a third-
 * party dialect for it; Prisma needs a generated client and its engine).
 */
export function drizzleAdapter<Tx extends DrizzleExecutorLike = DrizzleExecutorLike>(db: DrizzleDatabaseLike): DatabaseAdapter<Tx> {
  const client = db?.$client as Partial<PgPoolLike & PgliteLike> | undefined;
  const base = client && typeof client.connect === 'function' ? pgAdapter(client as PgPoolLike) : client && typeof client.listen === 'function' ? pgliteAdapter(client as PgliteLike) : undefined;
  if (!base || typeof db.transaction !== 'function') {
    throw new InvalidOptionsError('drizzleAdapter needs a Drizzle database on node-postgres (drizzle-orm/node-postgres) or PGlite (drizzle-orm/pglite)');
  }
  let drizzle: Promise<DrizzleModule> | undefined;
  const runnerOf = (executor: DrizzleExecutorLike): SqlRunner => ({
    async query<R extends object>(text: string, params?: readonly unknown[]): Promise<R[]> {
      const { sql } = await (drizzle ??= loadPeer<DrizzleModule>('drizzle-orm', 'drizzleAdapter', 'sql'));
      // `$n` placeholders become Drizzle parameters: the values never enter the SQL text.
      const parts = text.split(/\$(\d+)/);
      // sql.param, not sql`${value}`: the template spreads an array into a list of parameters,
      // where `$2::text[]` (the inbox's claim of a batch or group) needs the array as one.
      const chunks = parts.map((part, i) => (i % 2 === 0 ? sql.raw(part) : sql`${sql.param(params?.[Number(part) - 1])}`));
      const result = (await executor.execute(sql.join(chunks) as never)) as { rows?: R[] };
      return result.rows ?? [];
    },
  });
  return {
    driver: 'drizzle',
    inTransaction: runnerOf,
    query: (text, params) => runnerOf(db).query(text, params),
    // Drizzle hands the callback its own transaction type, which is what the handler declares.
    transaction: (work) => db.transaction((tx) => work(runnerOf(tx), tx as Tx)),
    listen: base.listen,
  };
}
