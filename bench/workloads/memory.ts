import { moduleConsumer } from '../contenders/module.js';
import { addNote, addRow, signed } from '../report.js';
import { N_MEMORY, PAYLOAD_BYTES, enabled, sleep, uniqueName, type BenchContext } from '../support.js';

const EARLY = 20_000;
const WINDOW = 5_000;
const MAX_BACKLOG = 25_000;
/** No handled message for this long means the workload is stuck: fail instead of hanging. */
const STALL_MS = 30_000;

/** RSS and heap after 20k handled messages and after N_MEMORY: growth between them is a leak. */
export async function memoryWorkload(ctx: BenchContext): Promise<void> {
  if (!enabled('module')) return;
  const stream = uniqueName('M');
  const subject = `${stream}.x`;
  await ctx.jsm.streams.add({ name: stream, subjects: [subject], max_msgs: 50_000 });
  const marks = new Map<number, { rss: number; heap: number }>();
  let handled = 0;
  const waitUntil = async (ready: () => boolean, stuck: string): Promise<void> => {
    let last = handled;
    let since = performance.now();
    while (!ready()) {
      await sleep(5);
      if (handled !== last) {
        last = handled;
        since = performance.now();
      } else if (performance.now() - since > STALL_MS) {
        throw new Error(`memory workload: ${stuck}`);
      }
    }
  };
  const { app, elapsed } = await moduleConsumer(ctx.url, subject, N_MEMORY, { durable: 'mem', concurrency: 64, dlq: false }, () => {
    const n = ++handled;
    if (n === EARLY || n === N_MEMORY) {
      global.gc?.();
      const m = process.memoryUsage();
      marks.set(n, { rss: m.rss, heap: m.heapUsed });
    }
  });
  for (let i = 0; i < N_MEMORY; i += WINDOW) {
    // The stream keeps the last 50k: a publisher further ahead than that would discard messages
    // the handler has not seen, and the count would never reach N_MEMORY.
    await waitUntil(() => i - handled <= MAX_BACKLOG, `handler stuck at ${handled} of ${i} published`);
    const window: Promise<unknown>[] = [];
    for (let j = 0; j < WINDOW; j++) window.push(ctx.js.publish(subject, PAYLOAD_BYTES));
    await Promise.all(window);
  }
  await waitUntil(() => handled >= N_MEMORY, `handler stuck at ${handled} of ${N_MEMORY}`);
  await elapsed;
  await app.close();
  await ctx.jsm.streams.delete(stream);
  const mb = (b: number) => b / 1024 / 1024;
  const a = marks.get(EARLY);
  const b = marks.get(N_MEMORY);
  if (!a || !b) return;
  const growth = mb(b.rss - a.rss);
  const label = `after ${EARLY / 1000}k / ${N_MEMORY / 1000}k messages`;
  addRow({ workload: `RSS ${label}`, unit: 'MB', raw: mb(a.rss), module: mb(b.rss), vsRaw: signed(growth, 'MB'), target: '< +50 MB', met: growth < 50 });
  addNote(`memory rows: the raw column holds the figure after ${EARLY / 1000}k messages, the module column after ${N_MEMORY / 1000}k (both after a GC).`);
  addRow({ workload: `heap ${label}`, unit: 'MB', raw: mb(a.heap), module: mb(b.heap), vsRaw: signed(mb(b.heap - a.heap), 'MB') });
}
