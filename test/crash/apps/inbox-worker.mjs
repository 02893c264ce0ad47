// An inbox handler in its own process, for the "killed after the commit, before the ack" tests:
// one durable inbox handler on the built package (dist), charging each order in the inbox
// transaction. Configured by INBOX_WORKER (JSON); with `maxMessages` it is a batch handler of
// that size, charging its batch with one multi-row INSERT. After the transaction that charges
// `dieAfter` has committed, the process SIGKILLs itself: the dispatcher has the commit, the acks
// (sent after it) never leave. It prints `COMMITTED <the ids of that transaction>` first.
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { BatchContext, EventContext, InboxTransaction, JetStreamInboxModule, JetStreamModule, OnEvent, openDatabase } from '../../../dist/index.js';

const { servers, subject, durable, ackWaitMs, maxMessages, database, inboxTable, chargesTable, dieAfter } = JSON.parse(process.env.INBOX_WORKER ?? '{}');
const db = await openDatabase(database);

let fatal;
// The adapter the inbox runs its transactions through, with the kill right after the commit of
// the transaction that charged `dieAfter`.
const killing = {
  ...db,
  async transaction(work) {
    const result = await db.transaction(work);
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
  if (orders.some((o) => o.id === dieAfter)) fatal = orders.map((o) => o.id);
}

class Billing {
  async charge(payload, _ctx, tx) {
    await charge(maxMessages ? payload : [payload], tx);
  }
}
Reflect.decorate(
  [
    OnEvent(subject, { durable, inbox: true, ackWaitMs, ...(maxMessages ? { batch: { maxMessages, maxWaitMs: 200 } } : {}) }),
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
      imports: [JetStreamModule.forRoot({ servers }), JetStreamInboxModule.forRoot({ database: killing, table: inboxTable })],
      providers: [Billing],
    }),
  ],
  WorkerModule,
);

const app = await NestFactory.createApplicationContext(WorkerModule, { logger: ['error', 'warn'] });
await app.init();
process.stdout.write('WORKER READY\n');
