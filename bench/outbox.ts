import 'reflect-metadata';
import { existsSync } from 'node:fs';
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import {
  JetStreamModule,
  JetStreamOutbox,
  JetStreamOutboxModule,
  JetStreamPublisher,
  OnEvent,
  openDatabase,
  OutboxRelayHost,
  type DatabaseAdapter,
  type OpenedDatabase,
} from '../lib/index.js';
import { startBenchServer } from './bench-server.js';
import { PAYLOAD, PUBLISH_WINDOW } from './support.js';

/**
 * The outbox side by side with the publisher it relays through, in one process, on one
 * throwaway nats-server and the run's database (DATABASE_URL, else PGlite in-process):
 *
 * - relay throughput: N rows committed at once (not timed), then a relay publishes them all;
 *   against `publish()` with PUBLISH_WINDOW acks outstanding sending the same N events. Rounds
 *   alternate; medians and their ratio (target >= 0.8x). The relay is started and idle first;
 *   the N rows are committed in one transaction and timed from that commit.
 * - latency: events committed at RATE/s, each in its own transaction; from the commit's return
 *   to the `@OnEvent` handler's call, relay woken by NOTIFY. p50/p99 (target p99 <= 20 ms at 1 000/s).
 *
 *   npm run bench:outbox
 *   BENCH_OUTBOX_N=20000 BENCH_OUTBOX_RATE=1000 BENCH_OUTBOX_SECONDS=10 npm run bench:outbox
 */
const N = Number(process.env.BENCH_OUTBOX_N ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RATE = Number(process.env.BENCH_OUTBOX_RATE ?? 1_000);
const SECONDS = Number(process.env.BENCH_OUTBOX_SECONDS ?? 5);
let seq = 0;
const unique = (p: string) => `${p}_${process.pid}_${++seq}`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

async function app(url: string, db: DatabaseAdapter, table: string, relay: boolean, providers: unknown[] = []): Promise<INestApplicationContext> {
  @Module({
    imports: [
      JetStreamModule.forRoot({ servers: url }),
      JetStreamOutboxModule.forRoot({ database: db, table, ensureSchema: true, relay: relay ? { pollIntervalMs: 1_000 } : false }),
    ],
    providers: providers as never[],
  })
  class BenchOutboxModule {}
  const a = await NestFactory.createApplicationContext(BenchOutboxModule, { logger: ['error', 'warn'] });
  await a.init();
  return a;
}

async function waitCount(jsm: JetStreamManager, stream: string, n: number): Promise<void> {
  while ((await jsm.streams.info(stream)).state.messages < n) await new Promise((r) => setTimeout(r, 2));
}

async function relayRound(url: string, db: OpenedDatabase, jsm: JetStreamManager, schema: string): Promise<number> {
  const stream = unique('OBX');
  await jsm.streams.add({ name: stream, subjects: [`${stream}.x`] });
  const table = `${schema}.${unique('t').toLowerCase()}`;
  // The relay is up and idle first; the N rows become visible at once, in one commit, whose
  // NOTIFY wakes it: the clock runs from that commit to the stream holding all N.
  const relayApp = await app(url, db, table, true);
  const outbox = relayApp.get(JetStreamOutbox);
  await db.transaction(async (_sql, tx) => {
    for (let j = 0; j < N; j++) await outbox.publish(tx as never, `${stream}.x`, PAYLOAD);
  });
  const t0 = performance.now();
  await waitCount(jsm, stream, N);
  const ms = performance.now() - t0;
  await relayApp.close();
  await jsm.streams.delete(stream);
  return (N / ms) * 1_000;
}

async function publishRound(url: string, jsm: JetStreamManager, db: OpenedDatabase, schema: string): Promise<number> {
  const stream = unique('PUB');
  await jsm.streams.add({ name: stream, subjects: [`${stream}.x`] });
  const a = await app(url, db, `${schema}.unused`, false);
  const publisher = a.get(JetStreamPublisher);
  const t0 = performance.now();
  const window: Promise<unknown>[] = [];
  for (let i = 0; i < N; i++) {
    window.push(publisher.publish(`${stream}.x`, PAYLOAD));
    if (window.length === PUBLISH_WINDOW) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
  const ms = performance.now() - t0;
  await a.close();
  await jsm.streams.delete(stream);
  return (N / ms) * 1_000;
}

async function latency(url: string, db: OpenedDatabase, jsm: JetStreamManager, schema: string): Promise<{ p50: number; p99: number; max: number; n: number }> {
  const stream = unique('LAT');
  await jsm.streams.add({ name: stream, subjects: [`${stream}.x`] });
  const committedAt = new Map<string, number>();
  // The handler may run before the writer's `await` of its commit resumes: both times are kept
  // and paired at the end (such an event counts as 0 ms), so no fast event is left out.
  const handledAt = new Map<string, number>();
  @Injectable()
  class Timing {
    @OnEvent(`${stream}.x`, { durable: 'latency' })
    handle(payload: { id: string }) {
      handledAt.set(payload.id, performance.now());
    }
  }
  const a = await app(url, db, `${schema}.${unique('lat').toLowerCase()}`, true, [Timing]);
  const outbox = a.get(JetStreamOutbox);
  const total = RATE * SECONDS;
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1_000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const id = `e${i}`;
    await db.transaction((_sql, tx) => outbox.publish(tx as never, `${stream}.x`, { id }, { msgId: id }));
    committedAt.set(id, performance.now());
  }
  const deadline = Date.now() + 30_000;
  while (handledAt.size < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await a.close();
  await jsm.streams.delete(stream);
  const samples = [...handledAt].map(([id, at]) => Math.max(0, at - committedAt.get(id)!));
  const sorted = samples.sort((x, y) => x - y);
  return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted[sorted.length - 1], n: samples.length };
}

async function main(): Promise<void> {
  const binary = process.env.NATS_SERVER_BIN ?? (existsSync('.cache/nats-server/bin/nats-server') ? '.cache/nats-server/bin/nats-server' : 'nats-server');
  const server = await startBenchServer(binary);
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  const url = process.env.DATABASE_URL;
  const db = await openDatabase(url ? { url } : {});
  const schema = `bench_outbox_${process.pid}`;
  await db.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  const kind = url ? 'PostgreSQL (DATABASE_URL)' : 'PGlite (in-process)';
  try {
    const relay: number[] = [];
    const publish: number[] = [];
    await relayRound(server.url, db, jsm, schema); // warm-up
    await publishRound(server.url, jsm, db, schema);
    for (let r = 0; r < ROUNDS; r++) {
      // Rotated order: neither side always runs on a warmer process.
      if (r % 2 === 0) {
        relay.push(await relayRound(server.url, db, jsm, schema));
        publish.push(await publishRound(server.url, jsm, db, schema));
      } else {
        publish.push(await publishRound(server.url, jsm, db, schema));
        relay.push(await relayRound(server.url, db, jsm, schema));
      }
    }
    const lat = await latency(server.url, db, jsm, schema);
    const ratio = median(relay) / median(publish);
    const fmt = (xs: number[]) => `${Math.round(median(xs))} msg/s (min ${Math.round(Math.min(...xs))}, max ${Math.round(Math.max(...xs))})`;
    console.log(`outbox bench: ${kind}, nats-server ${nc.info?.version}, node ${process.version}, ${ROUNDS} rounds of ${N} events, payload ${JSON.stringify(PAYLOAD).length} B`);
    console.log(`| measure | outbox | publish() x${PUBLISH_WINDOW} | ratio | target | met |`);
    console.log('| --- | --- | --- | --- | --- | --- |');
    console.log(`| relay throughput (${N} committed rows) | ${fmt(relay)} | ${fmt(publish)} | ${ratio.toFixed(2)}x | >= 0.8x | ${ratio >= 0.8 ? 'yes' : 'no'} |`);
    console.log(
      `| commit -> handler at ${RATE}/s for ${SECONDS} s (NOTIFY) | p50 ${lat.p50.toFixed(1)} ms, p99 ${lat.p99.toFixed(1)} ms, max ${lat.max.toFixed(1)} ms (${lat.n} events) | - | - | p99 <= 20 ms | ${lat.p99 <= 20 ? 'yes' : 'no'} |`,
    );
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await db.close();
    await nc.close();
    await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
