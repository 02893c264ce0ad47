import 'reflect-metadata';
import { Injectable, Module, type DynamicModule, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { execSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { existsSync } from 'node:fs';
import { EventContext, JetStreamModule, JetStreamPublisher, OnEvent, type OnEventOptions } from '../lib/index.js';
import { startBenchServer } from './bench-server.js';

/**
 * Side-by-side benchmarks: every contender runs in the same process against the same server,
 * rounds alternate between contenders, and the table prints medians and ratios. Nothing here
 * asserts; the numbers are for the README and for spotting regressions.
 *
 *   npm run bench            # default sizes
 *   BENCH_ROUNDS=5 npm run bench
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const N_CONSUME = Number(process.env.BENCH_CONSUME ?? 20_000);
const N_PUBLISH = Number(process.env.BENCH_PUBLISH ?? 10_000);
const encoder = new TextEncoder();
// BENCH_ONLY=consume,publish runs just those sections (for profiling one path).
const ONLY = process.env.BENCH_ONLY?.split(',');
const wanted = (section: string) => !ONLY || ONLY.includes(section);

const PAYLOAD = { pad: 'x'.repeat(116) };
const PAYLOAD_BYTES = encoder.encode(JSON.stringify(PAYLOAD));

let seq = 0;
const name = (p: string) => `${p}_${process.pid}_${++seq}`;

interface Ctx {
  url: string;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

async function prefill(ctx: Ctx, stream: string, subject: string, n: number, bytes = 128): Promise<void> {
  await ctx.jsm.streams.add({ name: stream, subjects: [subject] });
  const payload = encoder.encode(JSON.stringify({ pad: 'x'.repeat(Math.max(0, bytes - 12)) }));
  const window: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    window.push(ctx.js.publish(subject, payload));
    if (window.length === 512) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A Nest app with one @OnEvent handler that counts; resolves when `n` were handled. */
async function moduleConsumer(
  url: string,
  subject: string,
  n: number,
  options: OnEventOptions,
  body?: (payload: unknown, ctx: EventContext) => Promise<void> | void,
): Promise<{ app: INestApplicationContext; done: Promise<number> }> {
  const gate = deferred();
  let count = 0;
  let first = 0;
  let elapsed = 0;
  @Injectable()
  class Counter {
    @OnEvent(subject, options)
    async handle(payload: unknown, ctx: EventContext) {
      if (count === 0) first = performance.now();
      if (body) await body(payload, ctx);
      if (++count === n) {
        elapsed = performance.now() - first;
        gate.resolve();
      }
    }
  }
  @Module({ imports: [JetStreamModule.forRoot({ servers: url }) as DynamicModule], providers: [Counter] })
  class BenchModule {}
  const app = await NestFactory.createApplicationContext(BenchModule, { logger: false });
  return { app, done: gate.promise.then(() => elapsed) };
}

async function rawConsume(ctx: Ctx, stream: string, n: number, concurrency: number, work?: () => Promise<void>): Promise<number> {
  const durable = name('raw');
  await ctx.jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
  const consumer = await ctx.js.consumers.get(stream, durable);
  const messages = await consumer.consume({ max_messages: Math.max(2 * concurrency, 32) });
  let count = 0;
  let first = 0;
  let active = 0;
  const done = deferred();
  let release: (() => void) | undefined;
  for await (const m of messages) {
    if (count === 0 && first === 0) first = performance.now();
    if (!work) {
      m.ack();
      if (++count === n) break;
      continue;
    }
    while (active >= concurrency) await new Promise<void>((r) => (release = r));
    active++;
    void work().then(() => {
      m.ack();
      active--;
      release?.();
      if (++count === n) done.resolve();
    });
    if (count + active >= n) break;
  }
  if (work) await done.promise;
  const elapsed = performance.now() - first;
  messages.stop();
  return elapsed;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rows: string[][] = [];
const row = (...cells: (string | number)[]) => rows.push(cells.map(String));

async function rounds(label: string, contenders: Record<string, () => Promise<number>>, unit: (v: number) => string): Promise<Record<string, number>> {
  const results: Record<string, number[]> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [k, run] of Object.entries(contenders)) results[k].push(await run());
  }
  const medians = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]));
  for (const [k, v] of Object.entries(medians)) process.stderr.write(`  ${label} / ${k}: ${unit(v)}\n`);
  return medians;
}

async function main(): Promise<void> {
  const binary =
    process.env.NATS_SERVER_BIN ?? (existsSync('.cache/nats-server/bin/nats-server') ? '.cache/nats-server/bin/nats-server' : 'nats-server');
  const server = process.env.NATS_URL ? undefined : await startBenchServer(binary);
  const url = process.env.NATS_URL ?? server!.url;
  const nc = await connect({ servers: url });
  const ctx: Ctx = { url, nc, js: jetstream(nc), jsm: await jetstreamManager(nc) };
  const version = nc.info?.version;
  const rate = (n: number) => (ms: number) => `${Math.round((n / ms) * 1000).toLocaleString('en')} msg/s`;
  try {
    // 1. consume + ack of a pre-filled stream
    if (wanted('consume')) {
    const consume: Record<string, () => Promise<number>> = {};
    for (const [label, conc] of [
      ['raw consume()', 0],
      ['@OnEvent c=1', 1],
      ['@OnEvent c=64', 64],
    ] as const) {
      consume[label] = async () => {
        const stream = name('C');
        const subject = `${stream}.x`;
        await prefill(ctx, stream, subject, N_CONSUME);
        let ms: number;
        if (conc === 0) ms = await rawConsume(ctx, stream, N_CONSUME, 1);
        else {
          const { app, done } = await moduleConsumer(url, subject, N_CONSUME, { durable: 'bench', concurrency: conc, dlq: false });
          ms = await done;
          await app.close();
        }
        await ctx.jsm.streams.delete(stream);
        return ms;
      };
    }
    const c = await rounds('consume', consume, rate(N_CONSUME));
    const tput = (ms: number) => (N_CONSUME / ms) * 1000;
    row('consume+ack 20k (msg/s)', Math.round(tput(c['raw consume()'])), Math.round(tput(c['@OnEvent c=1'])), `${(c['raw consume()'] / c['@OnEvent c=1']).toFixed(2)}x`, '>= 0.9x');
    row('consume+ack 20k, c=64 (msg/s)', Math.round(tput(c['raw consume()'])), Math.round(tput(c['@OnEvent c=64'])), `${(c['raw consume()'] / c['@OnEvent c=64']).toFixed(2)}x`, '>= 0.9x');
    }

    // 2. a 5 ms async handler (I/O-bound services)
    if (wanted('slow')) {
    const N_SLOW = Number(process.env.BENCH_SLOW ?? 2_000);
    const slow: Record<string, () => Promise<number>> = {};
    for (const [label, conc, raw] of [
      ['raw c=64', 64, true],
      ['@OnEvent c=1', 1, false],
      ['@OnEvent c=64', 64, false],
    ] as const) {
      slow[label] = async () => {
        const n = conc === 1 ? Math.min(N_SLOW, 400) : N_SLOW;
        const stream = name('S');
        const subject = `${stream}.x`;
        await prefill(ctx, stream, subject, n);
        let ms: number;
        if (raw) ms = await rawConsume(ctx, stream, n, conc, () => sleep(5).then(() => undefined));
        else {
          const { app, done } = await moduleConsumer(url, subject, n, { durable: 'bench', concurrency: conc, dlq: false }, () => sleep(5).then(() => undefined));
          ms = await done;
          await app.close();
        }
        await ctx.jsm.streams.delete(stream);
        return (n / ms) * 1000;
      };
    }
    const s = await rounds('5 ms handler', slow, (v) => `${Math.round(v)} msg/s`);
    row('5 ms handler, c=1 (msg/s)', '-', Math.round(s['@OnEvent c=1']), '-', '');
    row('5 ms handler, c=64 (msg/s)', Math.round(s['raw c=64']), Math.round(s['@OnEvent c=64']), `${(s['@OnEvent c=64'] / s['raw c=64']).toFixed(2)}x`, '');
    }

    // 3. publish
    if (wanted('publish')) {
    const pub: Record<string, () => Promise<number>> = {};
    const payload = PAYLOAD;
    const bytes = PAYLOAD_BYTES;
    const pubApp = await NestFactory.createApplicationContext(
      (() => {
        @Module({ imports: [JetStreamModule.forRoot({ servers: url }) as DynamicModule] })
        class PubModule {}
        return PubModule;
      })(),
      { logger: false },
    );
    const publisher = pubApp.get(JetStreamPublisher);
    const withStream = async (fn: (subject: string) => Promise<void>) => {
      const stream = name('P');
      await ctx.jsm.streams.add({ name: stream, subjects: [`${stream}.x`] });
      const t0 = performance.now();
      await fn(`${stream}.x`);
      const ms = performance.now() - t0;
      await ctx.jsm.streams.delete(stream);
      return ms;
    };
    pub['raw sequential'] = () => withStream(async (subj) => {
      for (let i = 0; i < N_PUBLISH; i++) await ctx.js.publish(subj, bytes);
    });
    pub['publisher.publish sequential'] = () => withStream(async (subj) => {
      for (let i = 0; i < N_PUBLISH; i++) await publisher.publish(subj, payload);
    });
    pub['raw pipelined (256)'] = () => withStream(async (subj) => {
      const window: Promise<unknown>[] = [];
      for (let i = 0; i < N_PUBLISH; i++) {
        window.push(ctx.js.publish(subj, bytes));
        if (window.length === 256) await Promise.all(window.splice(0));
      }
      await Promise.all(window);
    });
    pub['publishBatch (256)'] = () => withStream(async (subj) => {
      await publisher.publishBatch(Array.from({ length: N_PUBLISH }, () => ({ subject: subj, payload })), { window: 256 });
    });
    const p = await rounds('publish', pub, rate(N_PUBLISH));
    const ptput = (ms: number) => Math.round((N_PUBLISH / ms) * 1000);
    row('publish sequential (msg/s)', ptput(p['raw sequential']), ptput(p['publisher.publish sequential']), `${(p['raw sequential'] / p['publisher.publish sequential']).toFixed(2)}x`, '');
    row('publish pipelined (msg/s)', ptput(p['raw pipelined (256)']), ptput(p['publishBatch (256)']), `${(p['raw pipelined (256)'] / p['publishBatch (256)']).toFixed(2)}x`, '>= 0.95x');
    await pubApp.close();
    }

    // 4. end-to-end latency at a fixed rate
    if (wanted('latency')) {
    const RATE = Number(process.env.BENCH_RATE ?? 2_000);
    const LAT_N = Number(process.env.BENCH_LATENCY_N ?? 6_000);
    const latency = async (mode: 'raw' | 'module'): Promise<number[]> => {
      const stream = name('L');
      const subject = `${stream}.x`;
      await ctx.jsm.streams.add({ name: stream, subjects: [subject] });
      const samples: number[] = [];
      const done = deferred();
      const record = (data: Uint8Array | { t: number }) => {
        const t = data instanceof Uint8Array ? JSON.parse(new TextDecoder().decode(data)).t : data.t;
        samples.push(performance.now() + performance.timeOrigin - t);
        if (samples.length === LAT_N) done.resolve();
      };
      let stop: () => Promise<void>;
      if (mode === 'raw') {
        const durable = name('rawlat');
        await ctx.jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.New });
        const consumer = await ctx.js.consumers.get(stream, durable);
        const messages = await consumer.consume({ max_messages: 32 });
        void (async () => {
          for await (const m of messages) {
            record(m.data);
            m.ack();
          }
        })();
        stop = async () => void messages.stop();
      } else {
        const { app } = await moduleConsumer(url, subject, Number.MAX_SAFE_INTEGER, { durable: 'lat', deliverPolicy: 'new', dlq: false }, (payload) =>
          record(payload as { t: number }),
        );
        stop = () => app.close();
      }
      const interval = 1000 / RATE;
      const start = performance.now();
      for (let i = 0; i < LAT_N; i++) {
        const due = start + i * interval;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        void ctx.js.publish(subject, encoder.encode(JSON.stringify({ t: performance.now() + performance.timeOrigin })));
      }
      await done.promise;
      await stop();
      await ctx.jsm.streams.delete(stream);
      return samples;
    };
    const lat: Record<'raw' | 'module', number[]> = { raw: [], module: [] };
    for (let r = 0; r < ROUNDS; r++) {
      lat.raw.push(...(await latency('raw')));
      lat.module.push(...(await latency('module')));
    }
    const p50 = (m: 'raw' | 'module') => percentile(lat[m], 50);
    const p99 = (m: 'raw' | 'module') => percentile(lat[m], 99);
    row(`latency p50 at ${RATE}/s (ms)`, p50('raw').toFixed(2), p50('module').toFixed(2), `+${(p50('module') - p50('raw')).toFixed(2)} ms`, '');
    row(`latency p99 at ${RATE}/s (ms)`, p99('raw').toFixed(2), p99('module').toFixed(2), `+${(p99('module') - p99('raw')).toFixed(2)} ms`, '<= +1 ms');
    }

    // 5. exactly-once vs at-least-once at concurrency 64
    if (wanted('modes')) {
    const modes: Record<string, () => Promise<number>> = {};
    for (const delivery of ['at-least-once', 'exactly-once'] as const) {
      modes[delivery] = async () => {
        const stream = name('E');
        const subject = `${stream}.x`;
        const n = Math.min(N_CONSUME, 10_000);
        await prefill(ctx, stream, subject, n);
        const { app, done } = await moduleConsumer(url, subject, n, { durable: 'bench', concurrency: 64, delivery, dlq: false });
        const ms = await done;
        await app.close();
        await ctx.jsm.streams.delete(stream);
        return (n / ms) * 1000;
      };
    }
    const e = await rounds('delivery modes', modes, (v) => `${Math.round(v)} msg/s`);
    row('exactly-once vs at-least-once, c=64 (msg/s)', Math.round(e['at-least-once']), Math.round(e['exactly-once']), `${(e['exactly-once'] / e['at-least-once']).toFixed(2)}x`, '>= 0.5x');
    }

    // 6. memory after 20k vs 200k handled messages
    const N_MEM = Number(process.env.BENCH_MEMORY ?? 200_000);
    if (wanted('memory')) {
      const stream = name('M');
      const subject = `${stream}.x`;
      await ctx.jsm.streams.add({ name: stream, subjects: [subject], max_msgs: 50_000 });
      const marks: Record<number, { rss: number; heap: number }> = {};
      const { app, done } = await moduleConsumer(url, subject, N_MEM, { durable: 'mem', concurrency: 64, dlq: false }, (_p, c) => {
        const n = c.sequence;
        if (n === 20_000 || n === N_MEM) {
          global.gc?.();
          const m = process.memoryUsage();
          marks[n] = { rss: m.rss, heap: m.heapUsed };
        }
      });
      for (let i = 0; i < N_MEM; i += 5_000) {
        const window: Promise<unknown>[] = [];
        for (let j = 0; j < 5_000; j++) window.push(ctx.js.publish(subject, PAYLOAD_BYTES));
        await Promise.all(window);
      }
      await done;
      await app.close();
      await ctx.jsm.streams.delete(stream);
      const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
      const a = marks[20_000];
      const b = marks[N_MEM];
      if (a && b) {
        row('RSS after 20k / 200k (MB)', mb(a.rss), mb(b.rss), `+${mb(b.rss - a.rss)} MB`, '< +50 MB');
        row('heap after 20k / 200k (MB)', mb(a.heap), mb(b.heap), `+${mb(b.heap - a.heap)} MB`, '');
      }
    }

    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    const head = ['workload', 'raw client', 'nestjs-jetstream', 'ratio', 'target'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
    console.log(`\nnats-server ${version}, node ${process.version}, ${cpus().length} x ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${ROUNDS} rounds (medians)`);
    console.log(`git ${safeGit()}`);
    console.log(line(head));
    console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
    for (const r of rows) console.log(line(r));
  } finally {
    await nc.close();
    await server?.stop();
  }
}

function safeGit(): string {
  try {
    return execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
