// An app with an outbox in its own process, for the crash scenarios of outbox-crash.spec.ts.
// OUTBOX_APP (JSON): { servers, url | dataDir, table, subject, write: number of orders to write
// (each in its own transaction; every 5th also writes an event and rolls back), relay: options
// or false }. Prints "ready", then "committed <id>" after each commit, then "written".
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { JetStreamModule, JetStreamOutbox, JetStreamOutboxModule, openDatabase } from '../../../dist/index.js';

const config = JSON.parse(process.env.OUTBOX_APP ?? '{}');
const db = await openDatabase(config.url ? { url: config.url } : { dataDir: config.dataDir });

class AppModule {}
Module({
  imports: [
    JetStreamModule.forRoot({ servers: config.servers }),
    JetStreamOutboxModule.forRoot({ database: db, table: config.table, ensureSchema: true, relay: config.relay }),
  ],
})(AppModule);

const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
await app.init();
const outbox = app.get(JetStreamOutbox);
console.log('ready');
for (let i = 0; i < (config.write ?? 0); i++) {
  const id = `order-${i}`;
  await db.transaction(async (sql, tx) => {
    await outbox.publish(tx, config.subject, { id }, { msgId: id, key: `customer-${i % 7}` });
  });
  console.log(`committed ${id}`);
  if (i % 5 === 0) {
    await db
      .transaction(async (sql, tx) => {
        await outbox.publish(tx, config.subject, { id: `rb-${i}` }, { msgId: `rb-${i}` });
        throw new Error('rolled back on purpose');
      })
      .catch(() => undefined);
  }
}
console.log('written');
// Stay up (relaying) until killed.
setInterval(() => undefined, 1 << 30);
