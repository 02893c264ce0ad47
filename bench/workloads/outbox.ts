import { openDatabase, type OpenedDatabase } from '../../lib/index.js';
import { latency, N, publishRound, RATE, relayRound, SECONDS } from '../outbox-rounds.js';
import { addNote, addRow, ratio, times } from '../report.js';
import { enabled, PUBLISH_WINDOW, rounds, type BenchContext } from '../support.js';

/** The databases a run covers: PGlite always, DATABASE_URL's PostgreSQL too when set. */
export function benchDatabases(): Array<{ name: string; open(): Promise<OpenedDatabase> }> {
  const url = process.env.DATABASE_URL;
  return [{ name: 'PGlite', open: () => openDatabase() }, ...(url ? [{ name: 'PostgreSQL', open: () => openDatabase({ url }) }] : [])];
}

/** Relay throughput against the module's pipelined `publish()`, and commit -> handler latency. */
export async function outboxWorkload(ctx: BenchContext): Promise<void> {
  if (!enabled('module')) return;
  for (const { name, open } of benchDatabases()) {
    const db = await open();
    const schema = `bench_outbox_${process.pid}`;
    await db.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    try {
      const rate = await rounds(`outbox ${name}`, { relay: () => relayRound(ctx.url, db, ctx.jsm, schema), publish: () => publishRound(ctx.url, ctx.jsm, db, schema) }, (v) => `${Math.round(v)} msg/s`);
      const r = ratio(rate.relay, rate.publish);
      addRow({ workload: `outbox relay of ${N / 1000}k committed rows, ${name}`, unit: 'msg/s', raw: rate.publish, module: rate.relay, vsRaw: times(r), target: '>= 0.8x raw', met: r === undefined ? undefined : r >= 0.8 });
      const lat = await latency(ctx.url, db, ctx.jsm, schema);
      addRow({ workload: `outbox commit -> handler p99 at ${RATE}/s, ${name}`, unit: 'ms', module: lat.p99, target: '<= 20 ms', met: lat.p99 <= 20, note: `p50 ${lat.p50.toFixed(1)} ms, max ${lat.max.toFixed(1)} ms, ${lat.n} events in ${SECONDS} s, relay woken by NOTIFY` });
    } finally {
      await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
      await db.close();
    }
  }
  addNote(`outbox relay rows: the raw column holds the module's publish() with ${PUBLISH_WINDOW} acks outstanding sending the same events, the module column the relay, timed from the commit of the rows to the relay's commit of the last of them (after its last ack; the stream is then checked to hold all).`);
}
