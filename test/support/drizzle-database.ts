import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';

export type DrizzleDatabase = ReturnType<typeof drizzlePg> | ReturnType<typeof drizzlePglite>;
/** The node-postgres side of the union: the two drivers' `transaction()` differ only in their query-result type, and a union of them cannot be called. */
export type NodePgDrizzle = ReturnType<typeof drizzlePg>;

/** Drizzle on the run's database: node-postgres on `url` (DATABASE_URL), else an in-memory PGlite. */
export async function openDrizzle(url: string | undefined): Promise<{ db: DrizzleDatabase; close(): Promise<void> }> {
  if (url) {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    return { db: drizzlePg(pool), close: () => pool.end() };
  }
  const lite = await PGlite.create();
  return { db: drizzlePglite(lite), close: () => lite.close() };
}
