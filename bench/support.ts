import { Session } from 'node:inspector';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';

/** Sizes and switches, all from the environment so a profiling run can shrink them. */
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** BENCH_WARMUP=0 skips the uncounted first round (for a quick profiling run). */
export const WARMUP = process.env.BENCH_WARMUP !== '0';
export const N_CONSUME = Number(process.env.BENCH_CONSUME ?? 20_000);
export const N_PUBLISH = Number(process.env.BENCH_PUBLISH ?? 10_000);
export const N_SLOW = Number(process.env.BENCH_SLOW ?? 2_000);
/** Sequential 5 ms handlers manage ~200 msg/s: a smaller batch keeps a round short. */
export const N_SLOW_SEQUENTIAL = Number(process.env.BENCH_SLOW_SEQUENTIAL ?? 400);
// At tens of thousands of msg/s, 10k messages last ~150 ms: too short to measure a mode by.
export const N_MODES = Number(process.env.BENCH_MODES ?? 30_000);
export const N_MEMORY = Number(process.env.BENCH_MEMORY ?? 200_000);
export const N_RECORDS = Number(process.env.BENCH_RECORDS ?? 20_000);
/** Messages per round of the batch workload's consume rows and of its bulk-insert rows. */
export const N_BATCH_CONSUME = Number(process.env.BENCH_BATCH_CONSUME ?? 50_000);
export const N_BATCH_INSERT = Number(process.env.BENCH_BATCH_INSERT ?? 5_000);
export const LATENCY_RATE = Number(process.env.BENCH_RATE ?? 2_000);
export const LATENCY_N = Number(process.env.BENCH_LATENCY_N ?? 6_000);
/** Publishes awaiting their ack at once, for every pipelined contender. */
export const PUBLISH_WINDOW = 256;

// BENCH_ONLY=consume,publish runs just those workloads (for profiling one path).
const ONLY = process.env.BENCH_ONLY?.split(',');
export const wanted = (workload: string): boolean => !ONLY || ONLY.includes(workload);
// BENCH_CONTENDERS=tuned,module skips the others (e.g. the peer while profiling the module).
const CONTENDERS = process.env.BENCH_CONTENDERS?.split(',');
export const enabled = (contender: 'tuned' | 'raw' | 'module' | 'peer'): boolean => !CONTENDERS || CONTENDERS.includes(contender);

/**
 * Extra `JetStreamModule.forRoot` options for the module contender, as JSON: an A/B switch for
 * one optimisation, e.g. BENCH_MODULE_OPTIONS='{"connection":{"noAsyncTraces":false}}'.
 */
export const MODULE_OPTIONS = JSON.parse(process.env.BENCH_MODULE_OPTIONS ?? '{}') as Record<string, unknown>;

export const encoder = new TextEncoder();
/** The event every workload sends: a 128-byte JSON object. */
export const PAYLOAD = { pad: 'x'.repeat(116) };
export const PAYLOAD_BYTES = encoder.encode(JSON.stringify(PAYLOAD));

export interface BenchContext {
  readonly url: string;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
}

let seq = 0;
/** Stream, consumer and subject names unique to this run. */
export const uniqueName = (prefix: string): string => `${prefix}_${process.pid}_${++seq}`;

/** A fresh stream with `n` messages in it, published pipelined. */
export async function prefill(ctx: BenchContext, stream: string, subject: string, n: number): Promise<void> {
  await ctx.jsm.streams.add({ name: stream, subjects: [subject] });
  const window: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    window.push(ctx.js.publish(subject, PAYLOAD_BYTES));
    if (window.length === 512) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
}

export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The slow workload's handler body: an awaited 5 ms timer, like a database round trip. */
export const fiveMs = (): Promise<void> => sleep(5);

let serverPid: number | undefined;
/** The bench's own nats-server, whose CPU time the sections count (none with NATS_URL). */
export function meterServer(pid: number | undefined): void {
  serverPid = pid;
}

/** CPU time spent by this process and by the server over one measured section, in µs. */
export interface CpuSpent {
  readonly clientUs: number;
  /** Undefined when the server is not ours or /proc cannot be read. */
  readonly serverUs?: number;
}

/** Starts counting CPU time of this process and of the bench's server. */
export function startCpuMeter(): { stop(): CpuSpent } {
  return new CpuMeter();
}

class CpuMeter {
  private readonly client = process.cpuUsage();
  private readonly server = serverCpuUs();

  stop(): CpuSpent {
    const c = process.cpuUsage(this.client);
    const s = serverCpuUs();
    return { clientUs: c.user + c.system, serverUs: s === undefined || this.server === undefined ? undefined : s - this.server };
  }
}

/**
 * `name` client + server µs per unit (message, write), median over the rounds: `spent` holds a
 * round's totals, `units` how many units each round handled. Undefined when nothing was measured.
 */
export function cpuSummary(name: string, spent: readonly CpuSpent[], units: number): string | undefined {
  if (spent.length === 0) return undefined;
  const client = median(spent.map((c) => c.clientUs / units));
  const servers = spent.flatMap((c) => (c.serverUs === undefined ? [] : [c.serverUs / units]));
  return `${name} ${client.toFixed(0)} µs client + ${servers.length ? `${median(servers).toFixed(0)} µs server` : 'server not measured'}`;
}

function serverCpuUs(): number | undefined {
  if (!serverPid) return undefined;
  try {
    // Fields 14 and 15 of /proc/<pid>/stat (after the command in parentheses): utime, stime in ticks.
    const fields = readFileSync(`/proc/${serverPid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * (1_000_000 / 100);
  } catch {
    return undefined;
  }
}

/**
 * Counts handled messages: the clock starts at the first call and stops at the `n`th, so
 * connection setup and the consumer's first pull stay out of the figure.
 */
export class Finish {
  private count = 0;
  private first = 0;
  private readonly done = deferred<number>();
  private meter?: CpuMeter;
  /** CPU spent between the first call and the `n`th, known once `elapsed` resolves. */
  cpu?: CpuSpent;

  constructor(private readonly n: number) {}

  /** Milliseconds from the first handled message to the `n`th. */
  get elapsed(): Promise<number> {
    return this.done.promise;
  }

  /** A handler call starts: the first one starts the clock. */
  begin(): void {
    if (this.first === 0) this.start();
  }

  /** A handler call finished, having handled `messages` (a batch handler's call: its batch's size). */
  tick(messages = 1): void {
    if (this.first === 0) this.start();
    const before = this.count;
    this.count += messages;
    if (before < this.n && this.count >= this.n) {
      // The clock stops once the last acks are written: the module queues them for the end of
      // this event-loop turn, so the next turn but one is after that flush.
      setImmediate(() =>
        setImmediate(() => {
          this.cpu = this.meter?.stop();
          this.done.resolve(performance.now() - this.first);
          profiler.stop();
        }),
      );
    }
  }

  private start(): void {
    this.first = performance.now();
    this.meter = new CpuMeter();
    profiler.start();
  }
}

/**
 * BENCH_PROFILE=<dir>: a CPU profile of each measured section only (first to last handled
 * message), without the prefill and app start around it, as `<workload>-<contender>-<round>`.
 */
class SectionProfiler {
  private readonly dir = process.env.BENCH_PROFILE;
  private session?: Session;
  private running = false;
  label = 'section';

  start(): void {
    if (!this.dir || this.running) return;
    if (!this.session) {
      this.session = new Session();
      this.session.connect();
      this.session.post('Profiler.enable');
    }
    this.running = true;
    this.session.post('Profiler.start');
  }

  stop(): void {
    if (!this.running || !this.session || !this.dir) return;
    this.running = false;
    const file = join(this.dir, `${this.label.replace(/[^\w=.-]+/g, '_')}.cpuprofile`);
    const dir = this.dir;
    this.session.post('Profiler.stop', (err, result) => {
      if (err) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(file, JSON.stringify(result.profile));
    });
  }
}

export const profiler = new SectionProfiler();

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** Fastest and slowest round of each median `rounds()` returned, keyed by that median. */
const spreads = new Map<number, readonly [number, number]>();

/**
 * The min and max of the rounds behind a median from `rounds()`, for the table. Keyed by the
 * median's value so that every row shows its spread without each workload passing it on.
 */
export function spreadOf(medianValue: number | undefined): readonly [number, number] | undefined {
  return medianValue === undefined ? undefined : spreads.get(medianValue);
}

/**
 * Runs every contender once per round, in turn, so slow drifts of a shared machine hit them all
 * alike; returns each contender's median. A warm-up round (JIT, connections, server caches)
 * runs first and is not counted, and each round starts one contender later than the previous
 * one, so no contender always runs first or right after the same neighbour. Contenders return
 * a figure (msg/s, ms, ...).
 */
export async function rounds(label: string, contenders: Record<string, () => Promise<number>>, unit: (v: number) => string): Promise<Record<string, number>> {
  const names = Object.keys(contenders);
  const results: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
  for (let r = WARMUP ? -1 : 0; r < ROUNDS; r++) {
    const offset = r < 0 ? 0 : r % names.length;
    for (let i = 0; i < names.length; i++) {
      const k = names[(i + offset) % names.length];
      profiler.label = r < 0 ? `${label}-${k}-warmup` : `${label}-${k}-${r + 1}`;
      const v = await contenders[k]();
      if (r >= 0) results[k].push(v);
      process.stderr.write(`  ${label} / ${k} ${r < 0 ? 'warm-up' : `round ${r + 1}`}: ${unit(v)}\n`);
    }
  }
  return Object.fromEntries(
    Object.entries(results).map(([k, v]) => {
      const m = median(v);
      spreads.set(m, [Math.min(...v), Math.max(...v)]);
      return [k, m];
    }),
  );
}

export const msgPerSec = (n: number, ms: number): number => (n / ms) * 1000;
