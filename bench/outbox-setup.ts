import { existsSync } from 'node:fs';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { openDatabase, type OpenedDatabase } from '../lib/index.js';
import { startBenchServer } from './bench-server.js';

export interface OutboxBench {
  readonly server: { readonly url: string; readonly pid: number | undefined };
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly db: OpenedDatabase;
  /** A schema of this run's own, dropped at the end. */
  readonly schema: string;
}

/**
 * The setting of `bench/outbox.ts` and `bench/outbox-cost.ts`: a throwaway nats-server, the
 * database at `databaseUrl` (PGlite without one) and a schema of the run's own; all torn down
 * after `body`.
 */
export async function withOutboxBench(databaseUrl: string | undefined, body: (bench: OutboxBench) => Promise<void>): Promise<void> {
  const binary = process.env.NATS_SERVER_BIN ?? (existsSync('.cache/nats-server/bin/nats-server') ? '.cache/nats-server/bin/nats-server' : 'nats-server');
  const server = await startBenchServer(binary);
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  const db = await openDatabase(databaseUrl ? { url: databaseUrl } : {});
  const schema = `bench_outbox_${process.pid}`;
  await db.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  try {
    await body({ server, nc, jsm, db, schema });
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await db.close();
    await nc.close();
    await server.stop();
  }
}
