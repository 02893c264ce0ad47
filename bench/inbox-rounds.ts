// The inbox against an at-least-once handler doing the same INSERT, side by side on one database
// and one nats-server: one round of one contender (`bench/inbox.ts` and the `inbox` workload of
// `npm run bench` alternate them).
import 'reflect-metadata';
import { Injectable, Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  InboxTransaction,
  JetStreamInboxModule,
  JetStreamModule,
  JetStreamPublisher,
  OnEvent,
  type EventContext,
  type OpenedDatabase,
} from '../lib/index.js';

export const N = Number(process.env.BENCH_INBOX_N ?? 5_000);
export const CONCURRENCY = Number(process.env.BENCH_INBOX_CONCURRENCY ?? 16);

interface Tx {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

let handled = 0;

/**
 * `at-least-once`: the INSERT autocommitted; `at-least-once-tx`: in a transaction of its own;
 * `inbox`: in the inbox's (a transaction per message, the default); `inbox-group-commit`: the
 * inbox with `groupCommit: true` (waiting messages share a transaction). All on one pool.
 */
export type Kind = 'at-least-once' | 'at-least-once-tx' | 'inbox' | 'inbox-group-commit';
export const KINDS: Kind[] = ['at-least-once', 'at-least-once-tx', 'inbox', 'inbox-group-commit'];

/** One contender consuming N messages that wait in a fresh stream; msg/s from the consumer's start. Needs the schema `bench_inbox`. */
export async function inboxRound(kind: Kind, url: string, db: OpenedDatabase, round: number): Promise<number> {
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
  const inbox = kind === 'inbox' || kind === 'inbox-group-commit';
  if (inbox) imports.push(JetStreamInboxModule.forRoot({ database: db, table: 'bench_inbox.inbox', ensureSchema: true, groupCommit: kind === 'inbox-group-commit' }));
  @Module({ imports, providers: [inbox ? Inbox : kind === 'at-least-once-tx' ? AtLeastOnceTx : AtLeastOnce] })
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

