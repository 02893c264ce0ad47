import { modulePublisher } from '../contenders/module.js';
import { addNote, addRow, ratio, times } from '../report.js';
import { N_PUBLISH, PAYLOAD, PUBLISH_WINDOW, msgPerSec, rounds, uniqueName, type BenchContext } from '../support.js';

/** nats-server's cap on one atomic batch: the largest batch is the cheapest per message. */
const ATOMIC_BATCH = 1_000;

/**
 * `publishBatch(items, { atomic: true })` against the windowed `publishBatch` of the same
 * `n` 128-byte events to one stream (`allow_atomic: true` for both, so the stream is the same):
 * atomic batches of 1000 one after another (all or nothing each), against up to PUBLISH_WINDOW
 * acks outstanding. Runs on nats-server 2.12+; older servers have no atomic batches.
 */
export async function atomicBatchWorkload(ctx: BenchContext): Promise<void> {
  const version = (ctx.nc.info?.version ?? '0.0.0').split('.').map(Number);
  if (!(version[0] > 2 || (version[0] === 2 && version[1] >= 12))) {
    addNote(`atomic publishBatch: not measured, nats-server ${ctx.nc.info?.version} has no atomic batches (2.12+)`);
    return;
  }
  const n = Math.floor(N_PUBLISH / ATOMIC_BATCH) * ATOMIC_BATCH;
  const { publisher, close } = await modulePublisher(ctx.url);
  const round = (send: (subject: string, items: Array<{ subject: string; payload: unknown }>) => Promise<unknown>) => async () => {
    const stream = uniqueName('PA');
    await ctx.jsm.streams.add({ name: stream, subjects: [`${stream}.x`], allow_atomic: true });
    const items = Array.from({ length: n }, () => ({ subject: `${stream}.x`, payload: PAYLOAD }));
    const t0 = performance.now();
    await send(`${stream}.x`, items);
    const ms = performance.now() - t0;
    const stored = (await ctx.jsm.streams.info(stream)).state.messages;
    await ctx.jsm.streams.delete(stream);
    if (stored !== n) throw new Error(`${stored} of ${n} messages stored`);
    return msgPerSec(n, ms);
  };
  try {
    const m = await rounds('atomic batch publish', {
      publishBatch: round((_, items) => publisher.publishBatch(items, { window: PUBLISH_WINDOW })),
      'atomic publishBatch': round(async (_, items) => {
        for (let i = 0; i < items.length; i += ATOMIC_BATCH) await publisher.publishBatch(items.slice(i, i + ATOMIC_BATCH), { atomic: true });
      }),
    }, (v) => `${Math.round(v)} msg/s`);
    addRow({
      workload: `publish ${n / 1000}k, atomic publishBatch (batches of ${ATOMIC_BATCH})`,
      unit: 'msg/s',
      raw: m.publishBatch,
      module: m['atomic publishBatch'],
      vsRaw: times(ratio(m['atomic publishBatch'], m.publishBatch)),
      note: `the raw column holds the module's windowed publishBatch (x${PUBLISH_WINDOW}, not atomic) to the same allow_atomic stream`,
    });
  } finally {
    await close();
  }
}
