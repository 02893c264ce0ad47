import 'reflect-metadata';
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { JetStreamManager } from '@nats-io/jetstream';
import {
  JetStreamModule,
  JetStreamOutbox,
  JetStreamOutboxModule,
  JetStreamPublisher,
  OnEvent,
  OutboxRelayHost,
  type DatabaseAdapter,
  type OpenedDatabase,
  type RelayStats,
} from '../lib/index.js';
import { PAYLOAD, PUBLISH_WINDOW } from './support.js';

/**
 * The outbox side by side with the publisher it relays through, in one process, on one
 * nats-server and one database (`bench/outbox.ts` and the `outbox` workload of `npm run bench`):
 *
 * - relay throughput: N rows committed at once (not timed), then a relay publishes them all;
 *   against `publish()` with PUBLISH_WINDOW acks outstanding sending the same N events. Rounds
 *   alternate; medians and their ratio (target >= 0.8x). The relay is started and idle first;
 *   the N rows are committed in one transaction and timed from that commit to the relay's
 *   commit of the last of them (the stream is then checked to hold all N).
 * - latency: events committed at RATE/s, each in its own transaction; from the commit's return
 *   to the `@OnEvent` handler's call, relay woken by NOTIFY. p50/p99 (target p99 <= 20 ms at 1 000/s).
 */
export const N = Number(process.env.BENCH_OUTBOX_N ?? 10_000);
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
export const RATE = Number(process.env.BENCH_OUTBOX_RATE ?? 1_000);
export const SECONDS = Number(process.env.BENCH_OUTBOX_SECONDS ?? 5);
/** Relay options to try other settings than the defaults: BENCH_OUTBOX_RELAY='{"batchSize":1024}'. */
const RELAY = JSON.parse(process.env.BENCH_OUTBOX_RELAY ?? '{}') as Record<string, number>;
let seq = 0;
const unique = (p: string) => `${p}_${process.pid}_${++seq}`;
export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

async function app(url: string, db: DatabaseAdapter, table: string, relay: boolean, providers: unknown[] = []): Promise<INestApplicationContext> {
  @Module({
    imports: [
      JetStreamModule.forRoot({ servers: url }),
      JetStreamOutboxModule.forRoot({ database: db, table, ensureSchema: true, relay: relay ? { pollIntervalMs: 1_000, ...RELAY } : false }),
    ],
    providers: providers as never[],
  })
  class BenchOutboxModule {}
  const a = await NestFactory.createApplicationContext(BenchOutboxModule, { logger: ['error', 'warn'] });
  await a.init();
  return a;
}

/**
 * The relay's clock stops at the commit of its last batch (after that batch's last ack, so
 * never sooner than publish()'s clock, which stops at its last ack), read in-process from the
 * relay's stats. It used to poll the stream's info every 2 ms: requests and JSON the publish
 * round did not pay, on the same 2 cores (node and nats-server CPU of the relay round).
 */
async function waitRelayed(stats: RelayStats, n: number): Promise<void> {
  while (stats.published < n) await new Promise((r) => setTimeout(r, 1));
}

/** Called around the timed part of a round (`bench/outbox-cost.ts` reads CPU times there). */
export interface RoundProbe {
  start(): void;
  stop(): Promise<void>;
}

export async function relayRound(url: string, db: OpenedDatabase, jsm: JetStreamManager, schema: string, probe?: RoundProbe): Promise<number> {
  const stream = unique('OBX');
  await jsm.streams.add({ name: stream, subjects: [`${stream}.x`] });
  const table = `${schema}.${unique('t').toLowerCase()}`;
  // The relay is up and idle first; the N rows become visible at once, in one commit, whose
  // NOTIFY wakes it: the clock runs from that commit to the relay's commit of the last row.
  const relayApp = await app(url, db, table, true);
  const outbox = relayApp.get(JetStreamOutbox);
  const stats = relayApp.get(OutboxRelayHost).relay!.stats;
  await db.transaction(async (_sql, tx) => {
    for (let j = 0; j < N; j++) await outbox.publish(tx as never, `${stream}.x`, PAYLOAD);
  });
  probe?.start();
  const t0 = performance.now();
  await waitRelayed(stats, N);
  const ms = performance.now() - t0;
  await probe?.stop();
  const stored = (await jsm.streams.info(stream)).state.messages;
  if (stored !== N) throw new Error(`relay round: the stream holds ${stored} messages, expected ${N}`);
  await relayApp.close();
  await jsm.streams.delete(stream);
  return (N / ms) * 1_000;
}

export async function publishRound(url: string, jsm: JetStreamManager, db: OpenedDatabase, schema: string, probe?: RoundProbe): Promise<number> {
  const stream = unique('PUB');
  await jsm.streams.add({ name: stream, subjects: [`${stream}.x`] });
  const a = await app(url, db, `${schema}.unused`, false);
  const publisher = a.get(JetStreamPublisher);
  probe?.start();
  const t0 = performance.now();
  const window: Promise<unknown>[] = [];
  for (let i = 0; i < N; i++) {
    window.push(publisher.publish(`${stream}.x`, PAYLOAD));
    if (window.length === PUBLISH_WINDOW) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
  const ms = performance.now() - t0;
  await probe?.stop();
  await a.close();
  await jsm.streams.delete(stream);
  return (N / ms) * 1_000;
}

export async function latency(url: string, db: OpenedDatabase, jsm: JetStreamManager, schema: string): Promise<{ p50: number; p99: number; max: number; n: number }> {
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

