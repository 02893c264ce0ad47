// A batch handler with the inbox in its own process, for the "killed after the commit, before
// the acks" test: one durable batch handler on the built package (dist), charging its orders
// with one multi-row INSERT in the inbox transaction. Configured by BATCH_INBOX_WORKER (JSON).
// After the transaction of the batch holding `dieAfter` has committed, the process SIGKILLs
// itself: the dispatcher has the commit, the batch's acks (sent after it) never leave.
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { BatchContext, InboxTransaction, JetStreamInboxModule, JetStreamModule, OnEvent, openDatabase } from '../../../dist/index.js';

const { servers, subject, durable, ackWaitMs, maxMessages, database, inboxTable, chargesTable, dieAfter } = JSON.parse(process.env.BATCH_INBOX_WORKER ?? '{}');
const db = await openDatabase(database);

let fatalBatch;
const killing = {
  ...db,
  async transaction(work) {
    const result = await db.transaction(work);
    if (fatalBatch) {
      process.stdout.write(`COMMITTED ${JSON.stringify(fatalBatch)}\n`);
      process.kill(process.pid, 'SIGKILL');
    }
    return result;
  },
};

class Billing {
  async charge(orders, _batch, tx) {
    const values = orders.map((_, i) => `($${i + 1}, 1)`).join(', ');
    await tx.query(`INSERT INTO ${chargesTable} (order_id, attempt) VALUES ${values}`, orders.map((o) => o.id));
    if (orders.some((o) => o.id === dieAfter)) fatalBatch = orders.map((o) => o.id);
  }
}
Reflect.decorate(
  [OnEvent(subject, { durable, inbox: true, ackWaitMs, batch: { maxMessages, maxWaitMs: 200 } }), Reflect.metadata('design:paramtypes', [Array, BatchContext, Object])],
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
