import type { DatabaseAdapter, Listening, SqlRunner, Statement } from './database-adapter.js';
import { inlineScript } from './sql-script.js';
import { TransactionRolledBackError } from './database-errors.js';

/**
 * The parts of node-postgres the adapter uses, written out so that neither the module nor its
 * users need `pg` or `@types/pg` unless they use them: a `pg.Pool` and a `pg.PoolClient` fit.
 */
export interface PgClientLike {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
  on(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  removeAllListeners(event?: string): unknown;
}

export interface PgPoolClientLike extends PgClientLike {
  release(destroy?: boolean | Error): void;
}

export interface PgPoolLike {
  connect(): Promise<PgPoolClientLike>;
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

/** `Tx` is the client the caller ran BEGIN on (`await pool.connect()`, then `BEGIN`). */
export function pgAdapter(pool: PgPoolLike): DatabaseAdapter<PgClientLike> {
  return {
    driver: 'pg',
    commitReportsRollback: true,
    inTransaction: (tx) => runnerOf(tx),
    query: async <R extends object>(sql: string, params?: readonly unknown[]) =>
      (await pool.query(sql, params as unknown[] | undefined)).rows as R[],
    transaction: <T>(work: (sql: SqlRunner, tx: PgClientLike, firstRows?: Array<Record<string, unknown>>) => Promise<T>, first?: Statement | readonly Statement[]) =>
      transact(pool, async (client) => {
        const inlined = first && inlineScript(first);
        if (inlined === undefined) {
          await client.query('BEGIN');
          return work(runnerOf(client), client);
        }
        // Several statements in one simple query: node-postgres hands back one result each.
        const results = (await client.query(`BEGIN; ${inlined.text}`)) as unknown as Array<{ rows: Array<Record<string, unknown>> }>;
        return work(runnerOf(client), client, results[inlined.count].rows);
      }),
    async listen(channel, onNotify, onLost): Promise<Listening> {
      const client = await pool.connect();
      let open = true;
      const lose = (err: unknown): void => {
        if (!open) return;
        open = false;
        client.removeAllListeners('notification');
        client.release(err instanceof Error ? err : new Error(String(err)));
        onLost(err);
      };
      client.on('error', lose);
      client.on('notification', (message) => {
        if (message.channel === channel) onNotify();
      });
      try {
        await client.query(`LISTEN ${quoteIdentifier(channel)}`);
      } catch (err) {
        open = false;
        client.removeAllListeners('notification');
        client.release(err instanceof Error ? err : true);
        throw err;
      }
      return {
        async close() {
          if (!open) return;
          open = false;
          client.removeAllListeners('notification');
          try {
            await client.query(`UNLISTEN ${quoteIdentifier(channel)}`);
            client.removeAllListeners('error');
            client.release();
          } catch (err) {
            client.release(err instanceof Error ? err : true);
          }
        },
      };
    },
  };
}

/** A pooled client for `work`, which opens the transaction; committed when it resolves, rolled back when it throws. */
async function transact<T>(pool: PgPoolLike, work: (client: PgPoolClientLike) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // A checked-out client whose backend dies emits 'error'; unheard, it would end the process.
  let broken: Error | undefined;
  const onError = (err: Error): void => {
    broken = err;
  };
  client.on('error', onError);
  try {
    const result = await work(client);
    const commit = (await client.query('COMMIT')) as { command?: string };
    if (commit.command === 'ROLLBACK') throw new TransactionRolledBackError();
    return result;
  } catch (err) {
    broken ??= await client.query('ROLLBACK').then(
      () => undefined,
      (rollbackError: Error) => rollbackError,
    );
    throw err;
  } finally {
    client.removeAllListeners('error');
    client.release(broken ?? false);
  }
}

function runnerOf(client: { query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }> }): SqlRunner {
  return {
    query: async <R extends object>(sql: string, params?: readonly unknown[]) =>
      (await client.query(sql, params as unknown[] | undefined)).rows as R[],
  };
}

export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
