// How many messages reach the dead-letter stream during a dependency outage, with and without
// the circuit breaker, side by side: `npm run bench:breaker`. Two handlers in one app, each on
// its own stream, share one dependency that the script takes down for BENCH_BREAKER_OUTAGE_MS
// (default 30 s) while publishing to both at BENCH_BREAKER_RATE messages a second each; both
// retry { maxAttempts: 5 } (default backoff: 1, 2, 4, 8 s, jittered) into a DLQ. Then it waits
// until every message is handled or dead-lettered and prints the counts.
import 'reflect-metadata';
import { Injectable, Module, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { loadavg } from 'node:os';
import { JetStreamModule, JetStreamPublisher, OnEvent, type CircuitBreakerOptions } from '../lib/index.js';
import { startBenchServer } from './bench-server.js';

const RATE = Number(process.env.BENCH_BREAKER_RATE ?? 20);
const OUTAGE_MS = Number(process.env.BENCH_BREAKER_OUTAGE_MS ?? 30_000);
/** Healthy publishing before and after the outage. */
const AROUND_MS = Number(process.env.BENCH_BREAKER_AROUND_MS ?? 5_000);
const BREAKER: CircuitBreakerOptions = { failures: 5, coolDownMs: Number(process.env.BENCH_BREAKER_COOL_DOWN_MS ?? 10_000) };
const BINARY = process.env.NATS_SERVER_BIN ?? '.cache/nats-server/bin/nats-server';
const CONTENDERS = ['without', 'with'] as const;
type Contender = (typeof CONTENDERS)[number];

const dependency = { down: false };
let breakerOpened = 0;
/** Errors to the console; counts the breaker's openings from its log line. */
const logger: LoggerService = {
  log: () => undefined,
  warn: (message: unknown) => {
    if (/circuit breaker opened/.test(String(message))) breakerOpened++;
  },
  error: (message: unknown) => {
    // Each dead letter is logged as an error: counted from the stream instead.
    if (!/dead-lettered/.test(String(message))) console.error(message);
  },
};
const handled: Record<Contender, Set<number>> = { without: new Set(), with: new Set() };
const calls: Record<Contender, number> = { without: 0, with: 0 };

function charge(contender: Contender, n: number): void {
  calls[contender]++;
  if (dependency.down) throw new Error('payment provider unreachable');
  handled[contender].add(n);
}

@Injectable()
class WithoutBreaker {
  @OnEvent('brk.without.charge', { durable: 'payments', retry: { maxAttempts: 5 }, dlq: { stream: 'BRK_DLQ_WITHOUT', subject: 'brkdlq.without' } })
  handle(payload: { n: number }): void {
    charge('without', payload.n);
  }
}

@Injectable()
class WithBreaker {
  @OnEvent('brk.with.charge', { durable: 'payments', retry: { maxAttempts: 5 }, dlq: { stream: 'BRK_DLQ_WITH', subject: 'brkdlq.with' }, circuitBreaker: BREAKER })
  handle(payload: { n: number }): void {
    charge('with', payload.n);
  }
}

async function main(): Promise<void> {
  const server = await startBenchServer(BINARY);
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'BRK_WITHOUT', subjects: ['brk.without.>'] });
  await jsm.streams.add({ name: 'BRK_WITH', subjects: ['brk.with.>'] });
  @Module({ imports: [JetStreamModule.forRoot({ servers: server.url })], providers: [WithoutBreaker, WithBreaker] })
  class BenchModule {}
  const app = await NestFactory.createApplicationContext(BenchModule, { logger });
  await app.init();
  const publisher = app.get(JetStreamPublisher);
  const loadBefore = loadavg()[0];

  // One message to each stream every 1/RATE s, on a schedule (not after each other's acks).
  const total = Math.round(((2 * AROUND_MS + OUTAGE_MS) / 1000) * RATE);
  const started = Date.now();
  let outageStartedAt = 0;
  let outageEndedAt = 0;
  for (let n = 0; n < total; n++) {
    const at = started + (n * 1000) / RATE;
    const wait = at - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const elapsed = Date.now() - started;
    if (!dependency.down && outageStartedAt === 0 && elapsed >= AROUND_MS) {
      dependency.down = true;
      outageStartedAt = Date.now();
    }
    if (dependency.down && elapsed >= AROUND_MS + OUTAGE_MS) {
      dependency.down = false;
      outageEndedAt = Date.now();
    }
    await Promise.all([publisher.publish('brk.without.charge', { n }), publisher.publish('brk.with.charge', { n })]);
  }
  if (dependency.down) {
    dependency.down = false;
    outageEndedAt = Date.now();
  }

  const deadLetters = async (c: Contender) => {
    try {
      return (await jsm.streams.info(`BRK_DLQ_${c.toUpperCase()}`)).state.messages;
    } catch {
      return 0; // the stream is created on the first dead letter's way
    }
  };
  // Every message ends handled or dead-lettered; the breaker's last cool-down may still run.
  const deadline = Date.now() + 5 * 60_000;
  const settled = async (c: Contender) => handled[c].size + (await deadLetters(c)) >= total;
  while (!((await settled('without')) && (await settled('with')))) {
    if (Date.now() > deadline) throw new Error('not every message was handled or dead-lettered within 5 minutes');
    await new Promise((r) => setTimeout(r, 200));
  }
  const drainedAt = Date.now();
  const rows = await Promise.all(CONTENDERS.map(async (c) => ({ c, dlq: await deadLetters(c) })));
  console.log(
    `${total} messages to each handler at ${RATE}/s over ${((2 * AROUND_MS + OUTAGE_MS) / 1000).toFixed(0)} s; dependency down for ${((outageEndedAt - outageStartedAt) / 1000).toFixed(1)} s; retry { maxAttempts: 5 } (backoff 1, 2, 4, 8 s), dead letters on`,
  );
  console.log('');
  console.log('| handler | published | handled | dead-lettered | handler calls |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const { c, dlq } of rows) {
    const name = c === 'with' ? `with circuitBreaker { failures: ${BREAKER.failures}, coolDownMs: ${BREAKER.coolDownMs} }` : 'without a circuit breaker';
    console.log(`| ${name} | ${total} | ${handled[c].size} | ${dlq} | ${calls[c]} |`);
  }
  console.log('');
  console.log(
    `all settled ${((drainedAt - outageEndedAt) / 1000).toFixed(1)} s after the dependency came back; the breaker opened ${breakerOpened} time(s); load average ${loadBefore.toFixed(2)} at the start, ${loadavg()[0].toFixed(2)} at the end`,
  );
  await app.close();
  await nc.close();
  await server.stop();
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
