import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type OpenedDatabase } from '../../lib/index.js';

/**
 * A database for one spec. With DATABASE_URL (CI: the machine's PostgreSQL) every spec gets a
 * schema of its own on that server, dropped at close, so parallel specs and engineers never
 * meet; without it, an in-process PGlite (the embedded default of a fresh machine). `table()`
 * names a table inside the spec's schema.
 */
export interface TestDatabase {
  readonly db: OpenedDatabase;
  readonly kind: 'pg' | 'pglite';
  readonly schema: string;
  table(base: string): string;
  /** How a child process reaches the same database (PGlite: after this process closed it). */
  readonly target: { readonly url: string } | { readonly dataDir: string };
  /** Closes this process's handle only; the schema and PGlite's files stay (for children). */
  release(): Promise<void>;
  /** Opens this process's handle again after `release`. */
  reopen(): Promise<OpenedDatabase>;
  close(): Promise<void>;
}

export function databaseKind(): 'pg' | 'pglite' {
  return process.env.DATABASE_URL ? 'pg' : 'pglite';
}

export interface TestDatabaseOptions {
  /** PGlite: keep the files in a temp folder, so another process can open them. */
  onDisk?: boolean;
}

export async function openTestDatabase(prefix: string, options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const schema = `${prefix.replace(/[^a-z0-9_]/g, '_')}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const url = process.env.DATABASE_URL;
  const dataDir = !url && options.onDisk ? mkdtempSync(join(tmpdir(), 'jst-pglite-')) : undefined;
  const open = () => openDatabase(url ? { url } : { dataDir });
  let db = await open();
  await db.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  let released = false;
  const handle: TestDatabase = {
    get db() {
      return db;
    },
    kind: url ? 'pg' : 'pglite',
    schema,
    table: (base) => `${schema}.${base}`,
    target: url ? { url } : { dataDir: dataDir ?? '' },
    async release() {
      if (released) return;
      released = true;
      await db.close();
    },
    async reopen() {
      if (released) {
        db = await open();
        released = false;
      }
      return db;
    },
    async close() {
      if (url) {
        await handle.reopen();
        await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
      }
      await handle.release();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return handle;
}
