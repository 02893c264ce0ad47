import { moduleBatchConsumer, moduleConsumer } from '../contenders/module.js';
import { tunedConsume, type TunedHandler } from '../contenders/raw-tuned.js';
import { addNote, addRow, ratio, times } from '../report.js';
import { N_BATCH_CONSUME, N_BATCH_INSERT, PAYLOAD, enabled, msgPerSec, prefill, rounds, uniqueName, type BenchContext } from '../support.js';
import { openDatabase, type OpenedDatabase } from '../../lib/index.js';

const BATCH = 100;
const BATCH_CONCURRENCY = (process.env.BENCH_BATCH_C ?? '1,2').split(',').map(Number);
const decoder = new TextDecoder('utf-8', { fatal: true });
/** The tuned floor parses each payload, as the batch handler's messages are parsed. */
const jsonHandler: TunedHandler = async (data) => void JSON.parse(decoder.decode(data));

/**
 * Batch handlers (`@OnEvent(…, { batch: { maxMessages: 100 } })`), two rows:
 * - consume + ack at 100 a batch against the tuned client's consume of the same JSON messages
 *   (at c=1 and c=64, the faster of the two is the floor);
 * - a bulk insert into PostgreSQL (PGlite in-process without DATABASE_URL; both with it): one
 *   multi-row INSERT a batch against a per-message handler doing one INSERT each, at the same
 *   concurrency, and a per-message handler at c=16 for what concurrency alone buys.
 */
export async function batchWorkload(ctx: BenchContext): Promise<void> {
  await consumeRows(ctx);
  // BENCH_BATCH_INSERT=0: the consume rows alone (for profiling them).
  if (N_BATCH_INSERT === 0) return;
  const databases: Array<[string, () => Promise<OpenedDatabase>]> = [['PGlite', () => openDatabase({})]];
  const url = process.env.DATABASE_URL;
  if (url) databases.push(['PostgreSQL', () => openDatabase({ url })]);
  for (const [name, open] of databases) await insertRows(ctx, name, await open());
}

async function consumeRows(ctx: BenchContext): Promise<void> {
  const n = N_BATCH_CONSUME;
  const contenders: Record<string, () => Promise<number>> = {};
  const round = (run: (stream: string, subject: string) => Promise<number>) => async () => {
    const stream = uniqueName('B');
    const subject = `${stream}.x`;
    await prefill(ctx, stream, subject, n);
    const ms = await run(stream, subject);
    await ctx.jsm.streams.delete(stream);
    return msgPerSec(n, ms);
  };
  if (enabled('tuned')) {
    for (const c of [1, 64]) contenders[`tuned json c=${c}`] = round(async (stream) => (await tunedConsume(ctx.url, stream, n, c, jsonHandler)).ms);
  }
  if (enabled('module')) {
    for (const c of BATCH_CONCURRENCY) {
      contenders[`module batch ${BATCH} c=${c}`] = round(async (_stream, subject) => {
        const { app, elapsed } = await moduleBatchConsumer(ctx.url, subject, n, { durable: 'bench', dlq: false, concurrency: c, batch: { maxMessages: BATCH, maxWaitMs: 50 } });
        const ms = await elapsed;
        await app.close();
        return ms;
      });
    }
  }
  const m = await rounds('batch consume', contenders, (v) => `${Math.round(v)} msg/s`);
  const tunedC1 = m['tuned json c=1'];
  const tunedC64 = m['tuned json c=64'];
  // The floor is the faster of the tuned client's two runs: the target holds against its best.
  const tuned = tunedC1 === undefined || tunedC64 === undefined ? (tunedC1 ?? tunedC64) : Math.max(tunedC1, tunedC64);
  for (const [i, c] of BATCH_CONCURRENCY.entries()) {
    const module = m[`module batch ${BATCH} c=${c}`];
    const vsTuned = ratio(module, tuned);
    // The first concurrency (1, the default) carries the target; the others show what a second slot buys.
    addRow({
      workload: `consume + ack ${n / 1000}k, JSON, batch handler ${BATCH} a batch, c=${c}`,
      unit: 'msg/s',
      tuned,
      module,
      vsTuned: times(vsTuned),
      target: i === 0 ? '>= 1.0x tuned' : undefined,
      met: i === 0 && vsTuned !== undefined ? vsTuned >= 1 : undefined,
    });
  }
  if (tunedC1 !== undefined && tunedC64 !== undefined) {
    addNote(
      `batch consume rows: raw-tuned is the faster of its c=1 (${Math.round(tunedC1).toLocaleString('en')} msg/s) and c=64 (${Math.round(tunedC64).toLocaleString('en')} msg/s) runs, both parsing each payload; ${N_BATCH_CONSUME / 1000}k messages a round.`,
    );
  }
}

async function insertRows(ctx: BenchContext, where: string, db: OpenedDatabase): Promise<void> {
  const schema = uniqueName('bench_batch').toLowerCase();
  await db.query(`CREATE SCHEMA ${schema}`);
  try {
    const contenders: Record<string, () => Promise<number>> = {};
    // The batch handler runs 4x the messages of the per-message ones, so its rounds last long enough to measure.
    const round = (n: number, run: (subject: string, table: string) => Promise<number>) => async () => {
      const stream = uniqueName('BI');
      const subject = `${stream}.x`;
      const table = `${schema}.${stream.toLowerCase()}`;
      await db.query(`CREATE TABLE ${table} (seq bigint NOT NULL, pad text NOT NULL)`);
      await prefill(ctx, stream, subject, n);
      const ms = await run(subject, table);
      const [{ rows }] = await db.query<{ rows: string | number }>(`SELECT count(*) AS rows FROM ${table}`);
      if (Number(rows) !== n) throw new Error(`${table}: ${rows} rows written, expected ${n}`);
      await db.query(`DROP TABLE ${table}`);
      await ctx.jsm.streams.delete(stream);
      return msgPerSec(n, ms);
    };
    const perMessage = (concurrency: number) =>
      round(N_BATCH_INSERT, async (subject, table) => {
        const { app, elapsed } = await moduleConsumer(ctx.url, subject, N_BATCH_INSERT, { durable: 'bench', dlq: false, concurrency }, async (payload, c) => {
          await db.query(`INSERT INTO ${table} (seq, pad) VALUES ($1, $2)`, [c.sequence, (payload as typeof PAYLOAD).pad]);
        });
        const ms = await elapsed;
        await app.close();
        return ms;
      });
    if (enabled('module')) {
      contenders['per-message c=1'] = perMessage(1);
      contenders['per-message c=16'] = perMessage(16);
      contenders[`batch ${BATCH}`] = round(4 * N_BATCH_INSERT, async (subject, table) => {
        const { app, elapsed } = await moduleBatchConsumer(ctx.url, subject, 4 * N_BATCH_INSERT, { durable: 'bench', dlq: false, batch: { maxMessages: BATCH, maxWaitMs: 50 } }, async (payloads, batch) => {
          // One statement for the batch: the columns as arrays, unnested into rows.
          await db.query(`INSERT INTO ${table} (seq, pad) SELECT * FROM unnest($1::bigint[], $2::text[])`, [
            batch.items.map((item) => item.context.sequence),
            (payloads as Array<typeof PAYLOAD>).map((p) => p.pad),
          ]);
        });
        const ms = await elapsed;
        await app.close();
        return ms;
      });
    }
    const m = await rounds(`batch insert ${where}`, contenders, (v) => `${Math.round(v)} msg/s`);
    const batch = m[`batch ${BATCH}`];
    const vsOne = ratio(batch, m['per-message c=1']);
    addRow({
      workload: `bulk insert into ${where}, batch handler ${BATCH} a batch vs per-message handler, c=1`,
      unit: 'msg/s',
      module: batch,
      vsTuned: undefined,
      target: '>= 10x per-message',
      met: vsOne === undefined ? undefined : vsOne >= 10,
      note:
        vsOne === undefined
          ? undefined
          : `${4 * N_BATCH_INSERT / 1000}k messages a round for the batch handler, ${N_BATCH_INSERT / 1000}k for the per-message ones: batch handler ${times(vsOne)} the per-message handler at c=1 (${Math.round(m['per-message c=1']).toLocaleString('en')} msg/s) and ${times(ratio(batch, m['per-message c=16']))} at c=16 (${Math.round(m['per-message c=16']).toLocaleString('en')} msg/s); one INSERT … SELECT FROM unnest(…) a batch vs one INSERT a message`,
    });
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await db.close();
  }
  addNote('batch rows: module is the batch handler; the per-message handlers are this module too, so their figures sit in the row\'s note.');
}
