import { moduleConsumer } from '../contenders/module.js';
import { PEER_CONCURRENCY_NOTE, peerConsumer } from '../contenders/peer.js';
import { rawConsume } from '../contenders/raw.js';
import { addNote, addRow, ratio, times } from '../report.js';
import { N_SLOW, N_SLOW_SEQUENTIAL, enabled, fiveMs, msgPerSec, prefill, rounds, uniqueName, type BenchContext } from '../support.js';

/** A handler that awaits 5 ms (an I/O-bound service): what concurrency buys. */
export async function slowWorkload(ctx: BenchContext): Promise<void> {
  const contenders: Record<string, () => Promise<number>> = {};
  const round = (n: number, run: (stream: string, subject: string) => Promise<number>) => async () => {
    const stream = uniqueName('S');
    const subject = `${stream}.x`;
    await prefill(ctx, stream, subject, n);
    const ms = await run(stream, subject);
    await ctx.jsm.streams.delete(stream);
    return msgPerSec(n, ms);
  };
  const sizeFor = (concurrency: number) => (concurrency === 1 ? N_SLOW_SEQUENTIAL : N_SLOW);
  for (const concurrency of [1, 64]) {
    const n = sizeFor(concurrency);
    if (enabled('raw')) contenders[`raw c=${concurrency}`] = round(n, (stream) => rawConsume(ctx, stream, n, concurrency, fiveMs));
    if (enabled('module')) {
      contenders[`module c=${concurrency}`] = round(n, async (_stream, subject) => {
        const { app, elapsed } = await moduleConsumer(ctx.url, subject, n, { durable: 'bench', concurrency, dlq: false }, fiveMs);
        const ms = await elapsed;
        await app.close();
        return ms;
      });
    }
  }
  if (enabled('peer')) {
    const n = N_SLOW_SEQUENTIAL;
    contenders.peer = round(n, async (_stream, subject) => {
      const { app, elapsed } = await peerConsumer(ctx.url, subject, n, fiveMs);
      const ms = await elapsed;
      await app.close();
      return ms;
    });
  }
  const m = await rounds('5 ms handler', contenders, (v) => `${Math.round(v)} msg/s`);
  for (const concurrency of [1, 64]) {
    const module = m[`module c=${concurrency}`];
    const vsPeer = ratio(module, m.peer);
    addRow({
      workload: `5 ms handler, c=${concurrency}`,
      unit: 'msg/s',
      raw: m[`raw c=${concurrency}`],
      module,
      peer: m.peer,
      vsRaw: times(ratio(module, m[`raw c=${concurrency}`])),
      vsPeer: times(vsPeer),
      target: concurrency === 64 ? '>= 50x peer' : undefined,
      met: concurrency === 64 && vsPeer !== undefined ? vsPeer >= 50 : undefined,
    });
  }
  if (m.peer !== undefined) addNote(`peer: ${PEER_CONCURRENCY_NOTE}, so its c=64 cells show its one mode.`);
}
