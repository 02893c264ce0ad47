import { moduleConsumer } from '../contenders/module.js';
import { PEER_CONCURRENCY_NOTE, peerConsumer } from '../contenders/peer.js';
import { rawConsume } from '../contenders/raw.js';
import { addNote, addRow, ratio, times } from '../report.js';
import { N_CONSUME, enabled, msgPerSec, prefill, rounds, uniqueName, type BenchContext } from '../support.js';

/** Consume + ack of a pre-filled stream, handlers that do nothing: the per-message overhead. */
export async function consumeWorkload(ctx: BenchContext): Promise<void> {
  const n = N_CONSUME;
  const contenders: Record<string, () => Promise<number>> = {};
  const round = (run: (stream: string, subject: string) => Promise<number>) => async () => {
    const stream = uniqueName('C');
    const subject = `${stream}.x`;
    await prefill(ctx, stream, subject, n);
    const ms = await run(stream, subject);
    await ctx.jsm.streams.delete(stream);
    return msgPerSec(n, ms);
  };
  if (enabled('raw')) contenders.raw = round((stream) => rawConsume(ctx, stream, n, 1));
  if (enabled('module')) {
    for (const concurrency of [1, 64]) {
      contenders[`module c=${concurrency}`] = round(async (_stream, subject) => {
        const { app, elapsed } = await moduleConsumer(ctx.url, subject, n, { durable: 'bench', concurrency, dlq: false });
        const ms = await elapsed;
        await app.close();
        return ms;
      });
    }
  }
  if (enabled('peer')) {
    contenders.peer = round(async (_stream, subject) => {
      const { app, elapsed } = await peerConsumer(ctx.url, subject, n);
      const ms = await elapsed;
      await app.close();
      return ms;
    });
  }
  const m = await rounds('consume', contenders, (v) => `${Math.round(v)} msg/s`);
  for (const concurrency of [1, 64]) {
    const module = m[`module c=${concurrency}`];
    const vsRaw = ratio(module, m.raw);
    addRow({
      workload: `consume + ack ${n / 1000}k, c=${concurrency}`,
      unit: 'msg/s',
      raw: m.raw,
      module,
      peer: m.peer,
      vsRaw: times(vsRaw),
      vsPeer: times(ratio(module, m.peer)),
      target: '>= 0.9x raw',
      met: vsRaw === undefined ? undefined : vsRaw >= 0.9,
    });
  }
  if (m.peer !== undefined) addNote(`peer: ${PEER_CONCURRENCY_NOTE}, so its c=64 cells show its one mode.`);
}
