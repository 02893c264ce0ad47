import { moduleConsumer } from '../contenders/module.js';
import { rawSubscriber } from '../contenders/raw.js';
import { tunedSubscriber } from '../contenders/raw-tuned.js';
import { addRow, signed } from '../report.js';
import { LATENCY_N, LATENCY_RATE, ROUNDS, deferred, encoder, enabled, percentile, sleep, uniqueName, type BenchContext } from '../support.js';

const decoder = new TextDecoder();

/** Publish-to-handler latency at a fixed rate: each event carries its send time. */
export async function latencyWorkload(ctx: BenchContext): Promise<void> {
  type Mode = 'tuned' | 'raw' | 'module';
  const samples: Record<Mode, number[]> = { tuned: [], raw: [], module: [] };
  const once = async (mode: Mode, warmup: boolean): Promise<void> => {
    const stream = uniqueName('L');
    const subject = `${stream}.x`;
    await ctx.jsm.streams.add({ name: stream, subjects: [subject] });
    let seen = 0;
    const done = deferred();
    const record = (sentAt: number) => {
      if (!warmup) samples[mode].push(performance.now() + performance.timeOrigin - sentAt);
      if (++seen === LATENCY_N) done.resolve();
    };
    let stop: () => Promise<void>;
    if (mode === 'tuned') {
      stop = await tunedSubscriber(ctx.url, stream, (data) => record((JSON.parse(decoder.decode(data)) as { t: number }).t));
    } else if (mode === 'raw') {
      stop = await rawSubscriber(ctx, stream, (data) => record((JSON.parse(decoder.decode(data)) as { t: number }).t));
    } else {
      const { app } = await moduleConsumer(ctx.url, subject, Number.MAX_SAFE_INTEGER, { durable: 'lat', deliverPolicy: 'new', dlq: false }, (payload) =>
        record((payload as { t: number }).t),
      );
      stop = () => app.close();
    }
    const interval = 1000 / LATENCY_RATE;
    const start = performance.now();
    for (let i = 0; i < LATENCY_N; i++) {
      const wait = start + i * interval - performance.now();
      if (wait > 1) await sleep(wait);
      void ctx.js.publish(subject, encoder.encode(JSON.stringify({ t: performance.now() + performance.timeOrigin })));
    }
    await done.promise;
    await stop();
    await ctx.jsm.streams.delete(stream);
  };
  // A warm-up round, then each round starts with the next mode (the same rotation as rounds()).
  const modes = (['tuned', 'raw', 'module'] as const).filter((mode) => enabled(mode));
  for (let r = -1; r < ROUNDS; r++) {
    for (let i = 0; i < modes.length; i++) await once(modes[(i + Math.max(r, 0)) % modes.length], r < 0);
  }
  const p = (mode: Mode, q: number) => (samples[mode].length ? percentile(samples[mode], q) : undefined);
  for (const q of [50, 99]) {
    const tuned = p('tuned', q);
    const raw = p('raw', q);
    const module = p('module', q);
    const delta = tuned === undefined || module === undefined ? undefined : module - tuned;
    addRow({
      workload: `latency p${q} at ${LATENCY_RATE}/s`,
      unit: 'ms',
      tuned,
      raw,
      module,
      vsTuned: delta === undefined ? undefined : signed(delta, 'ms'),
      vsRaw: raw === undefined || module === undefined ? undefined : signed(module - raw, 'ms'),
      target: q === 99 ? '<= tuned + 1 ms' : undefined,
      met: q === 99 && delta !== undefined ? delta <= 1 : undefined,
    });
  }
}
