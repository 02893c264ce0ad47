// An inbox handler in its own process, for the "killed after the commit, before the ack" tests:
// one durable inbox handler on the built package (dist), charging each order in the inbox
// transaction. Configured by INBOX_WORKER (JSON); with `maxMessages` it is a batch handler of
// that size, charging its batch with one multi-row INSERT. After the transaction that charges
// `dieAfter` has committed, the process SIGKILLs itself: the dispatcher has the commit, the acks
// (sent after it) never leave. It prints `COMMITTED <the ids of that transaction>` first.
// With `groupCommit` the inbox runs one group transaction at a time, and the ids are those of
// the group; with `killMidGroup` too, the process dies right after `dieAfter`'s INSERT, its
// group still open, printing `OPEN <the ids of that group so far>`.
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { BatchContext, EventContext, InboxTransaction, JetStreamInboxModule, JetStreamModule, OnEvent, openDatabase } from '../../../dist/index.js';

const { servers, subject, durable, ackWaitMs, maxMessages, database, inboxTable, chargesTable, dieAfter, groupCommit, killMidGroup, concurrency } = JSON.parse(process.env.INBOX_WORKER ?? '{}');
const db = await openDatabase(database);

let fatal;
/** Group commit: the ids charged in the open group transaction (one at a time). */
let group = [];
// The adapter the inbox runs its transactions through, with the kill right after the commit of
// the transaction that charged `dieAfter`.
const killing = {
  ...db,
  async transaction(work) {
    group = [];
    const result = await db.transaction(work);
    if (groupCommit && group.includes(dieAfter)) fatal = group;
    if (fatal) {
      process.stdout.write(`COMMITTED ${JSON.stringify(fatal)}\n`);
      process.kill(process.pid, 'SIGKILL');
    }
    return result;
  },
};

async function charge(orders, tx) {
  const values = orders.map((_, i) => `($${i + 1}, 1)`).join(', ');
  await tx.query(`INSERT INTO ${chargesTable} (order_id, attempt) VALUES ${values}`, orders.map((o) => o.id));
  if (groupCommit) {
    group.push(...orders.map((o) => o.id));
    if (killMidGroup && orders.some((o) => o.id === dieAfter)) {
      process.stdout.write(`OPEN ${JSON.stringify(group)}\n`);
      process.kill(process.pid, 'SIGKILL');
    }
  } else if (orders.some((o) => o.id === dieAfter)) fatal = orders.map((o) => o.id);
}

class Billing {
  async charge(payload, _ctx, tx) {
    await charge(maxMessages ? payload : [payload], tx);
  }
}
Reflect.decorate(
  [
    OnEvent(subject, { durable, inbox: true, ackWaitMs, ...(concurrency ? { concurrency } : {}), ...(maxMessages ? { batch: { maxMessages, maxWaitMs: 200 } } : {}) }),
    Reflect.metadata('design:paramtypes', maxMessages ? [Array, BatchContext, Object] : [Object, EventContext, Object]),
  ],
  Billing.prototype,
  'charge',
  Object.getOwnPropertyDescriptor(Billing.prototype, 'charge'),
);
InboxTransaction()(Billing.prototype, 'charge', 2);
Reflect.decorate([Injectable()], Billing);

class WorkerModule {}
Reflect.decorate(
  [
    Module({
      imports: [JetStreamModule.forRoot({ servers }), JetStreamInboxModule.forRoot({ database: killing, table: inboxTable, ...(groupCommit ? { groupCommit: { maxMessages: 8, transactions: 1 } } : {}) })],
      providers: [Billing],
    }),
  ],
  WorkerModule,
);

const app = await NestFactory.createApplicationContext(WorkerModule, { logger: ['error', 'warn'] });
await app.init();
process.stdout.write('WORKER READY\n');
