import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  InboxTransaction,
  JetStreamInboxModule,
  JetStreamModule,
  JetStreamOutbox,
  JetStreamOutboxModule,
  OnEvent,
  type DatabaseAdapter,
  type EventContext,
} from '../../lib/index.js';
import { addNote, addRow, signed } from '../report.js';
import { enabled, PAYLOAD, sleep, uniqueName, type BenchContext } from '../support.js';
import { benchDatabases } from './outbox.js';

const N = Number(process.env.BENCH_OUTBOX_MEMORY ?? 200_000);
const EARLY = 20_000;
/** Events per writing transaction, and how far the writer may run ahead of the handler. */
const TX_EVENTS = 1_000;
const MAX_BACKLOG = 20_000;
const STALL_MS = 60_000;

interface Tx {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

/**
 * Outbox relay and inbox handler in one app, N events end to end (written in transactions of
 * TX_EVENTS, relayed, handled with an INSERT through the inbox): heap and RSS after a GC at 20k
 * handled events and at N. Growth of the heap between them is what a leak would show.
 */
export async function outboxMemoryWorkload(ctx: BenchContext): Promise<void> {
  if (!enabled('module') || !global.gc) return;
  for (const { name, open } of benchDatabases()) {
    const db = await open();
    const schema = `bench_obxmem_${process.pid}`;
    await db.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await db.query(`CREATE TABLE "${schema}".charges (v text NOT NULL)`);
    const stream = uniqueName('OBXMEM');
    const subject = `${stream}.x`;
    await ctx.jsm.streams.add({ name: stream, subjects: [subject], max_msgs: 50_000 });
    const marks = new Map<number, NodeJS.MemoryUsage>();
    let handled = 0;
    @Injectable()
    class Billing {
      @OnEvent(subject, { durable: 'mem', concurrency: 64, inbox: true })
      async charge(_payload: unknown, _ctx: EventContext, @InboxTransaction() tx: Tx): Promise<void> {
        await tx.query(`INSERT INTO "${schema}".charges (v) VALUES ('x')`);
        const n = ++handled;
        if (n === EARLY || n === N) {
          global.gc!();
          marks.set(n, process.memoryUsage());
        }
      }
    }
    @Module({
      imports: [
        JetStreamModule.forRoot({ servers: ctx.url }),
        JetStreamOutboxModule.forRoot({ database: db as DatabaseAdapter, table: `${schema}.outbox`, ensureSchema: true }),
        JetStreamInboxModule.forRoot({ database: db as DatabaseAdapter, table: `${schema}.inbox`, ensureSchema: true }),
      ],
      providers: [Billing],
    })
    class MemoryModule {}
    const app = await NestFactory.createApplicationContext(MemoryModule, { logger: ['error', 'warn'] });
    try {
      await app.init();
      const outbox = app.get(JetStreamOutbox);
      let last = 0;
      let since = performance.now();
      const waitUntil = async (ready: () => boolean): Promise<void> => {
        while (!ready()) {
          await sleep(5);
          if (handled !== last) [last, since] = [handled, performance.now()];
          else if (performance.now() - since > STALL_MS) throw new Error(`outbox memory workload (${name}): stuck at ${handled} handled`);
        }
      };
      for (let i = 0; i < N; i += TX_EVENTS) {
        await waitUntil(() => i - handled <= MAX_BACKLOG);
        await db.transaction(async (_sql, tx) => {
          for (let j = 0; j < TX_EVENTS; j++) await outbox.publish(tx as never, subject, PAYLOAD);
        });
      }
      await waitUntil(() => handled >= N);
    } finally {
      await app.close();
      await ctx.jsm.streams.delete(stream);
      await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
      await db.close();
    }
    const a = marks.get(EARLY);
    const b = marks.get(N);
    if (!a || !b) continue;
    const mb = (x: number) => x / 1024 / 1024;
    const label = `outbox + inbox after ${EARLY / 1000}k / ${N / 1000}k events, ${name}`;
    addRow({ workload: `heap ${label}`, unit: 'MB', raw: mb(a.heapUsed), module: mb(b.heapUsed), vsRaw: signed(mb(b.heapUsed - a.heapUsed), 'MB'), target: '< +10 MB', met: mb(b.heapUsed - a.heapUsed) < 10 });
    addRow({ workload: `RSS ${label}`, unit: 'MB', raw: mb(a.rss), module: mb(b.rss), vsRaw: signed(mb(b.rss - a.rss), 'MB') });
  }
  addNote('outbox + inbox memory rows: relay and inbox handler in one app, events written in transactions of 1 000; raw column after 20k handled events, module column at the end (both after a GC). PGlite keeps its database in the process, so its RSS grows with the rows (outbox and inbox rows are kept for their retention); the heap is what a leak in the module would grow. PostgreSQL runs after PGlite in the same process, so its RSS at 20k still holds memory PGlite released.');
}
