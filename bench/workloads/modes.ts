import { moduleConsumer } from '../contenders/module.js';
import { addRow, ratio, times } from '../report.js';
import { N_MODES, enabled, msgPerSec, prefill, rounds, uniqueName, type BenchContext } from '../support.js';

/** What exactly-once (idempotency record per message, confirmed ack) costs over at-least-once. */
export async function modesWorkload(ctx: BenchContext): Promise<void> {
  if (!enabled('module')) return;
  const n = N_MODES;
  const contenders: Record<string, () => Promise<number>> = {};
  for (const delivery of ['at-least-once', 'exactly-once'] as const) {
    contenders[delivery] = async () => {
      const stream = uniqueName('E');
      const subject = `${stream}.x`;
      await prefill(ctx, stream, subject, n);
      const { app, elapsed } = await moduleConsumer(ctx.url, subject, n, { durable: 'bench', concurrency: 64, delivery, dlq: false });
      const ms = await elapsed;
      await app.close();
      await ctx.jsm.streams.delete(stream);
      return msgPerSec(n, ms);
    };
  }
  const m = await rounds('delivery modes', contenders, (v) => `${Math.round(v)} msg/s`);
  const r = ratio(m['exactly-once'], m['at-least-once']);
  addRow({
    workload: `exactly-once vs at-least-once ${n / 1000}k, c=64`,
    unit: 'msg/s',
    raw: m['at-least-once'],
    module: m['exactly-once'],
    vsRaw: times(r),
    target: '>= 0.5x',
    met: r === undefined ? undefined : r >= 0.5,
    note: 'the raw column holds at-least-once, the module column exactly-once',
  });
}
