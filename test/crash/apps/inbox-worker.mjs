// An inbox handler in its own process, for the "killed after the commit, before the ack" test:
// one durable inbox handler on the built package (dist), charging each order in the inbox
// transaction. Configured by INBOX_WORKER (JSON). After the transaction that charges `dieAfter`
// has committed, the process SIGKILLs itself: the dispatcher has the commit, the ack (sent at
// the end of the event-loop turn) never leaves.
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventContext, InboxTransaction, JetStreamInboxModule, JetStreamModule, OnEvent, openDatabase } from '../../../dist/index.js';

const { servers, subject, durable, ackWaitMs, database, inboxTable, chargesTable, dieAfter } = JSON.parse(process.env.INBOX_WORKER ?? '{}');
const db = await openDatabase(database);

let fatalCharged = false;
// The adapter the inbox runs its transactions through, with the kill right after the commit of
// the transaction that charged `dieAfter`.
const killing = {
  ...db,
  async transaction(work) {
    const result = await db.transaction(work);
    if (fatalCharged) {
      process.stdout.write(`COMMITTED ${dieAfter}\n`);
      process.kill(process.pid, 'SIGKILL');
    }
    return result;
  },
};

class Billing {
  async charge(order, _ctx, tx) {
    await tx.query(`INSERT INTO ${chargesTable} (order_id, attempt) VALUES ($1, 1)`, [order.id]);
    if (order.id === dieAfter) fatalCharged = true;
  }
}
Reflect.decorate(
  [OnEvent(subject, { durable, inbox: true, ackWaitMs }), Reflect.metadata('design:paramtypes', [Object, EventContext, Object])],
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
