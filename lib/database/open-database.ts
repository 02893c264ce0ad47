import { loadPeer } from '../observability/load-peer.js';
import type { OwnedDatabase } from './database-adapter.js';
import { pgAdapter, type PgClientLike, type PgPoolLike } from './pg-adapter.js';
import { pgliteAdapter, type PgliteLike, type PgliteTransactionLike } from './pglite-adapter.js';

export interface OpenDatabaseOptions {
  /** `postgres://...`: a node-postgres pool on that server. Absent: an embedded PGlite. */
  url?: string;
  /** PGlite only: where it keeps its files; absent, in memory (gone when closed). */
  dataDir?: string;
  /** node-postgres only: pool size; default 10. */
  max?: number;
}

export type OpenedDatabase = OwnedDatabase<PgClientLike> | OwnedDatabase<PgliteTransactionLike>;

interface PgModule {
  Pool: new (config: { connectionString: string; max?: number }) => PgPoolLike & {
    end(): Promise<void>;
    on(event: 'error', listener: (err: Error) => void): unknown;
  };
}
interface PgliteModule {
  PGlite: { create(dataDir?: string): Promise<PgliteLike & { close(): Promise<void> }> };
}

/**
 * Opens the database for an app that has none wired yet (the sample, a quick start, tests):
 * node-postgres for a URL, else PGlite in-process. Each driver is an optional peer dependency,
 * loaded only here and only when chosen.
 */
export async function openDatabase(options: OpenDatabaseOptions = {}): Promise<OpenedDatabase> {
  if (options.url) {
    const { Pool } = await loadPeer<PgModule>('pg', 'openDatabase({ url })', 'Pool');
    const pool = new Pool({ connectionString: options.url, max: options.max ?? 10 });
    // An idle client whose backend goes away emits on the pool; unheard, it would end the process.
    pool.on('error', () => undefined);
    return { ...pgAdapter(pool), close: () => pool.end() };
  }
  const { PGlite } = await loadPeer<PgliteModule>('@electric-sql/pglite', 'openDatabase() without a url', 'PGlite');
  const db = await PGlite.create(options.dataDir);
  return { ...pgliteAdapter(db), close: () => db.close() };
}
