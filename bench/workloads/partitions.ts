import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addNote, addRow, ratio, times } from '../report.js';
import { PUBLISH_WINDOW, deferred, msgPerSec, rounds, uniqueName, type BenchContext } from '../support.js';

const N = Number(process.env.BENCH_PARTITIONS ?? 6_000);
const KEYS = 1_000;
const PARTITIONS = Number(process.env.BENCH_PARTITIONS_COUNT ?? 24);
const CONCURRENCY = Number(process.env.BENCH_PARTITIONS_CONCURRENCY ?? 4);
const WORKER = resolve(dirname(fileURLToPath(import.meta.url)), '../apps/partition-worker.js');

/**
 * A partitioned group with a 5 ms handler, at most CONCURRENCY calls at once per instance: 3 instances
 * (processes) against 1, taking turns. Timed from the first publish, once every instance owns
 * its share, to the last message handled; each key's messages must come out in order.
 */
export async function partitionsWorkload(ctx: BenchContext): Promise<void> {
  const violations: string[] = [];
  const cpuPerMessage: Array<{ instances: number; us: number }> = [];
  const round = (instances: number) => async () => {
    const stream = uniqueName('PART');
    await ctx.jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    const dir = mkdtempSync(join(tmpdir(), 'bench-partitions-'));
    const workers = Array.from({ length: instances }, (_, i) => new BenchWorker(ctx.url, stream, join(dir, `w${i}.log`)));
    try {
      await Promise.all(workers.map((w) => w.ready));
      // Each instance joined; wait until their views agree, so no partition moves while timed.
      await until(() => workers.every((w) => w.members === instances) && workers.reduce((a, w) => a + w.owns, 0) === PARTITIONS, 30_000, 'the partitions to settle');
      const cpuBefore = workers.reduce((a, w) => a + w.cpuMs, 0);
      const started = Date.now();
      const window: Array<Promise<unknown>> = [];
      for (let j = 0; j < N; j++) {
        const k = j % KEYS;
        window.push(ctx.js.publish(`${stream}.k${k}.evt`, JSON.stringify({ k, n: Math.floor(j / KEYS) })));
        if (window.length >= PUBLISH_WINDOW) await Promise.all(window.splice(0));
      }
      await Promise.all(window);
      await until(() => workers.reduce((a, w) => a + w.handled, 0) >= N, 120_000, `${N} handled`);
      const ms = Date.now() - started;
      cpuPerMessage.push({ instances, us: ((workers.reduce((a, w) => a + w.cpuMs, 0) - cpuBefore) * 1000) / N });
      await Promise.all(workers.map((w) => w.stop()));
      violations.push(...checkOrder(workers.map((w) => w.journal())));
      return msgPerSec(N, ms);
    } finally {
      await Promise.all(workers.map((w) => w.kill()));
      rmSync(dir, { recursive: true, force: true });
      await ctx.jsm.streams.delete(stream).catch(() => undefined);
      await ctx.jsm.streams.delete(`${stream}-bench`).catch(() => undefined);
    }
  };
  const load = loadavg()[0];
  const m = await rounds('partitioned, 5 ms handler', { '1 instance': round(1), '3 instances': round(3) }, (v) => `${Math.round(v)} msg/s`);
  const gain = ratio(m['3 instances'], m['1 instance']);
  addRow({
    workload: `partitioned (${PARTITIONS} partitions, ${KEYS} keys), 5 ms handler, concurrency ${CONCURRENCY}: 3 instances vs 1`,
    unit: 'msg/s',
    raw: m['1 instance'],
    module: m['3 instances'],
    vsRaw: times(gain),
    target: '>= 2.5x with per-key order',
    met: gain !== undefined && gain >= 2.5 && violations.length === 0,
    note: violations.length === 0 ? 'per-key order held in every round' : `ORDER BROKEN: ${violations.slice(0, 3).join('; ')}`,
  });
  const cpu = (instances: number) => {
    const xs = cpuPerMessage.filter((c) => c.instances === instances).map((c) => c.us).sort((a, b) => a - b);
    return xs.length ? Math.round(xs[Math.floor(xs.length / 2)]) : undefined;
  };
  addNote(`partitioned: CPU of the instances' processes per message (median): ${cpu(1)} µs with 1 instance, ${cpu(3)} µs with 3.`);
  addNote(`partitioned: the raw column is 1 instance and the module column 3 instances (separate processes); load average ${load.toFixed(2)} at the start, ${loadavg()[0].toFixed(2)} at the end.`);
}

/** Every key's messages handled in order 0, 1, 2, ...: in journal order, and by time across instances. */
function checkOrder(journals: string[][]): string[] {
  const byKey = new Map<string, Array<{ n: number; at: number; w: number; i: number }>>();
  journals.forEach((lines, w) =>
    lines.forEach((line, i) => {
      const [k, n, at] = line.split(' ');
      if (!byKey.has(k)) byKey.set(k, []);
      byKey.get(k)!.push({ n: Number(n), at: Number(at), w, i });
    }),
  );
  const out: string[] = [];
  for (const [k, seen] of byKey) {
    seen.sort((a, b) => a.at - b.at || (a.w === b.w ? a.i - b.i : 0));
    const ns = seen.map((s) => s.n);
    if (ns.some((n, i) => n !== i)) out.push(`key ${k}: ${ns.join(',')}`);
  }
  return out;
}

async function until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`partitions bench: gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

class BenchWorker {
  readonly ready: Promise<void>;
  handled = 0;
  /** CPU time of the process so far, as of its last progress line. */
  cpuMs = 0;
  members = 0;
  owns = 0;
  private readonly child: ChildProcess;
  private readonly exited = deferred<void>();

  constructor(url: string, stream: string, private readonly out: string) {
    this.child = spawn(process.execPath, [WORKER], {
      env: { ...process.env, PARTITION_WORKER: JSON.stringify({ servers: url, subject: `${stream}.*.evt`, durable: 'bench', concurrency: CONCURRENCY, partitions: PARTITIONS, out }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const ready = deferred<void>();
    this.ready = ready.promise;
    this.child.once('exit', () => this.exited.resolve());
    let buffered = '';
    this.child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        if (line === 'READY') ready.resolve();
        else if (line.startsWith('HANDLED ')) [this.handled, this.cpuMs] = line.slice(8).split(' ').map(Number);
        else if (line.startsWith('OWNS ')) [this.members, this.owns] = line.slice(5).split(' ').map(Number);
      }
    });
  }

  journal(): string[] {
    try {
      return readFileSync(this.out, 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  }

  /** SIGTERM: a graceful stop (the journal is flushed at exit). */
  async stop(): Promise<void> {
    this.child.kill('SIGTERM');
    await this.exited.promise;
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited.promise;
  }
}
