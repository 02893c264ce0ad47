import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import type { DatabaseAdapter, SqlRunner } from './database-adapter.js';
import { pgAdapter, type PgPoolLike } from './pg-adapter.js';

/** The parts of a TypeORM `EntityManager` the adapter uses (one bound to a transaction fits). */
export interface TypeormManagerLike {
  readonly queryRunner?: { query(sql: string, params?: unknown[], structured?: boolean): Promise<unknown> };
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

/** The parts of a TypeORM `DataSource` the adapter uses, so `typeorm` stays optional. */
export interface TypeormDataSourceLike {
  transaction<T>(run: (manager: TypeormManagerLike) => Promise<T>): Promise<T>;
  readonly driver: { readonly options: { readonly type: string }; readonly master?: unknown };
}

/**
 * TypeORM on PostgreSQL (`@nestjs/typeorm`'s `DataSource`): `Tx` is the `EntityManager` bound to
 * the transaction, so the handler saves entities with it and they commit with the inbox row.
 * Statements of the module's own and LISTEN go through the data source's node-postgres pool.
 */
export function typeormAdapter(dataSource: TypeormDataSourceLike): DatabaseAdapter<TypeormManagerLike> {
  const type = dataSource?.driver?.options?.type;
  if (type !== 'postgres') {
    throw new InvalidOptionsError(`typeormAdapter needs a TypeORM DataSource of type "postgres", got ${JSON.stringify(type)}`);
  }
  const pool = dataSource.driver.master as PgPoolLike | undefined;
  if (!pool || typeof pool.connect !== 'function') {
    throw new InvalidOptionsError('typeormAdapter: the DataSource is not initialized (no connection pool yet); create the adapter after DataSource.initialize(), e.g. in forRootAsync with inject: [DataSource]');
  }
  const base = pgAdapter(pool);
  const runnerOf = (manager: TypeormManagerLike): SqlRunner => ({
    async query<R extends object>(sql: string, params?: readonly unknown[]): Promise<R[]> {
      const values = params as unknown[] | undefined;
      // The structured result gives the rows for every statement; EntityManager.query gives
      // [rows, count] for UPDATE and DELETE.
      if (manager.queryRunner) return ((await manager.queryRunner.query(sql, values, true)) as { records: R[] }).records;
      return (await manager.query(sql, values)) as R[];
    },
  });
  return {
    driver: 'typeorm',
    inTransaction: runnerOf,
    query: base.query,
    transaction: (work) => dataSource.transaction((manager) => work(runnerOf(manager), manager)),
    listen: base.listen,
  };
}
