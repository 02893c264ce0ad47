// The inbox against an at-least-once handler doing the same INSERT, side by side on one database
// (DATABASE_URL's PostgreSQL, else PGlite) and one throwaway nats-server:
// `npm run bench:inbox` prints msg/s of each and their ratio per round (BENCH_INBOX_N messages,
// BENCH_ROUNDS rounds, alternating which goes first).
import 'reflect-metadata';
import { Injectable, Logger, Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  InboxTransaction,
  JetStreamInboxModule,
  JetStreamModule,
  JetStreamPublisher,
  OnEvent,
  openDatabase,
  type EventContext,
  type OpenedDatabase,
} from '../lib/index.js';
import { startBenchServer } from './bench-server.js';

const N = Number(process.env.BENCH_INBOX_N ?? 5_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_INBOX_CONCURRENCY ?? 16);
const BINARY = process.env.NATS_SERVER_BIN ?? '.cache/nats-server/bin/nats-server';

interface Tx {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

let handled = 0;
let db: OpenedDatabase;

/** `at-least-once`: the INSERT autocommitted; `at-least-once-tx`: in a transaction of its own; `inbox`: in the inbox's. */
type Kind = 'at-least-once' | 'at-least-once-tx' | 'inbox';
const KINDS: Kind[] = ['at-least-once', 'at-least-once-tx', 'inbox'];

async function runOnce(kind: Kind, url: string, round: number): Promise<number> {
  const tag = KINDS.indexOf(kind);
  const stream = `BINBOX_${tag}_${round}`;
  const subject = `${stream}.created`;
  const table = `bench_inbox.charges_${tag}_${round}`;
  await db.query(`CREATE TABLE ${table} (order_id text NOT NULL)`);
  handled = 0;

  @Injectable()
  class AtLeastOnce {
    @OnEvent(subject, { durable: 'bench', concurrency: CONCURRENCY, stream })
    async charge(order: { id: string }): Promise<void> {
      await db.query(`INSERT INTO ${table} (order_id) VALUES ($1)`, [order.id]);
      handled++;
    }
  }
  @Injectable()
  class AtLeastOnceTx {
    @OnEvent(subject, { durable: 'bench', concurrency: CONCURRENCY, stream })
    async charge(order: { id: string }): Promise<void> {
      await db.transaction((sql) => sql.query(`INSERT INTO ${table} (order_id) VALUES ($1)`, [order.id]));
      handled++;
    }
  }
  @Injectable()
  class Inbox {
    @OnEvent(subject, { durable: 'bench', concurrency: CONCURRENCY, stream, inbox: true })
    async charge(order: { id: string }, _ctx: EventContext, @InboxTransaction() tx: Tx): Promise<void> {
      await tx.query(`INSERT INTO ${table} (order_id) VALUES ($1)`, [order.id]);
      handled++;
    }
  }
  const imports: DynamicModule[] = [JetStreamModule.forRoot({ servers: url })];
  if (kind === 'inbox') imports.push(JetStreamInboxModule.forRoot({ database: db, table: 'bench_inbox.inbox', ensureSchema: true }));
  @Module({ imports, providers: [kind === 'inbox' ? Inbox : kind === 'at-least-once-tx' ? AtLeastOnceTx : AtLeastOnce] })
  class BenchModule {}

  // The messages wait in the stream; the clock starts when the consumer starts.
  const nc = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
  const seed = await NestFactory.createApplicationContext(
    (() => {
      @Module({ imports: [JetStreamModule.forRoot({ servers: url })] })
      class Seed {}
      return Seed;
    })(),
    { logger: false },
  );
  await seed.get(JetStreamPublisher).publishBatch(Array.from({ length: N }, (_, i) => ({ subject, payload: { id: `o-${i}` } })));
  await seed.close();

  const start = performance.now();
  const app = await NestFactory.createApplicationContext(BenchModule, { logger: false });
  await app.init();
  while (handled < N) await new Promise((r) => setTimeout(r, 5));
  for (;;) {
    const info = await jsm.consumers.info(stream, 'bench');
    if (info.num_ack_pending === 0 && info.num_pending === 0) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const seconds = (performance.now() - start) / 1000;
  await app.close();
  await jsm.streams.delete(stream);
  await nc.close();
  return N / seconds;
}

async function main(): Promise<void> {
  const server = await startBenchServer(BINARY);
  const url = process.env.DATABASE_URL;
  db = await openDatabase(url ? { url } : {});
  await db.query('DROP SCHEMA IF EXISTS bench_inbox CASCADE');
  await db.query('CREATE SCHEMA bench_inbox');
  const logger = new Logger('bench:inbox');
  logger.log(`${N} messages, concurrency ${CONCURRENCY}, ${url ? 'PostgreSQL' : 'PGlite'}, ${ROUNDS} rounds`);
  const ratios: number[] = [];
  const txRatios: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // Rotated, so no contender always runs first (cold) or last.
      const order = KINDS.map((_, i) => KINDS[(i + round) % KINDS.length]);
      const rate = {} as Record<Kind, number>;
      for (const kind of order) rate[kind] = await runOnce(kind, server.url, round);
      ratios.push(rate.inbox / rate['at-least-once']);
      txRatios.push(rate.inbox / rate['at-least-once-tx']);
      console.log(
        `round ${round + 1}: at-least-once + INSERT ${rate['at-least-once'].toFixed(0)} msg/s | at-least-once + INSERT in a transaction ${rate['at-least-once-tx'].toFixed(0)} msg/s | inbox ${rate.inbox.toFixed(0)} msg/s | ratios ${(rate.inbox / rate['at-least-once']).toFixed(2)} / ${(rate.inbox / rate['at-least-once-tx']).toFixed(2)}`,
      );
    }
    const summary = (values: number[]) => {
      const sorted = [...values].sort((a, b) => a - b);
      return `median ${sorted[Math.floor(sorted.length / 2)].toFixed(2)} (min ${sorted[0].toFixed(2)}, max ${sorted[sorted.length - 1].toFixed(2)})`;
    };
    const where = url ? 'PostgreSQL' : 'PGlite';
    console.log(`inbox / at-least-once + INSERT: ${summary(ratios)} on ${where}`);
    console.log(`inbox / at-least-once + INSERT in a transaction: ${summary(txRatios)} on ${where}`);
  } finally {
    await db.query('DROP SCHEMA IF EXISTS bench_inbox CASCADE').catch(() => undefined);
    await db.close();
    await server.stop();
  }
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
