import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Column, DataSource, Entity, EntityManager, PrimaryGeneratedColumn } from 'typeorm';
import { integer, pgSchema, text } from 'drizzle-orm/pg-core';
import type { PgTransaction, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import pg from 'pg';
import {
  drizzleAdapter,
  IDEMPOTENCY_KEY_HEADER,
  ensureSchema,
  inboxDdl,
  InboxTransaction,
  JetStreamInboxModule,
  JetStreamModule,
  JetStreamPublisher,
  OnEvent,
  tableName,
  typeormAdapter,
  type EventContext,
} from '../../lib/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { openDrizzle, type DrizzleDatabase } from '../support/drizzle-database.js';
import { startApp } from '../support/test-app.js';
import { freshStream, sharedServerHooks } from './kit.js';

/**
 * The ORM adapters: the handler writes through its ORM's own transaction object (TypeORM's
 * EntityManager, Drizzle's transaction), and those writes commit or roll back with the inbox row.
 */
const hooks = sharedServerHooks();
const url = process.env.DATABASE_URL;
const schema = uniqueName('inbox_orm').toLowerCase().replace(/[^a-z0-9_]/g, '_');

async function settled(stream: string, durable: string, count: number): Promise<void> {
  await waitFor(
    async () => {
      const info = await hooks.client.jsm.consumers.info(stream, durable);
      return info.ack_floor.stream_seq === count && info.num_ack_pending === 0;
    },
    { timeoutMs: 15_000, message: `${count} messages acked` },
  );
}

describe('inbox through Drizzle (node-postgres with DATABASE_URL, else PGlite)', () => {
  const orm = pgSchema(schema);
  const charges = orm.table('charges', { orderId: text('order_id').notNull(), attempt: integer('attempt').notNull() });
  let db: DrizzleDatabase;
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ db, close } = await openDrizzle(url));
    const adapter = drizzleAdapter(db);
    await adapter.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await adapter.query(`CREATE TABLE "${schema}".charges (order_id text NOT NULL, attempt int NOT NULL)`);
  });
  afterAll(async () => {
    await drizzleAdapter(db).query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await close();
  });

  it.each([
    ['a transaction per message', false],
    ['group commit', true],
  ])('commits the Drizzle writes with the inbox row, rolls them back on failure, and skips a handled key (%s)', async (mode, groupCommit) => {
    const { stream, subject } = await freshStream(hooks.client.jsm, groupCommit ? 'INBOXDRZG' : 'INBOXDRZ');
    const id = (name: string) => `${groupCommit ? 'g' : ''}${name}`;
    @Injectable()
    class Billing {
      calls = 0;
      @OnEvent(subject('created'), { durable: 'billing', inbox: true, retry: { maxAttempts: 3, initialDelayMs: 50, jitter: false } })
      async charge(order: { id: string }, ctx: EventContext, @InboxTransaction() tx: PgTransaction<PgQueryResultHKT>): Promise<void> {
        this.calls++;
        await tx.insert(charges).values({ orderId: order.id, attempt: ctx.attempt });
        if (order.id.endsWith('drz-flaky') && ctx.attempt === 1) throw new Error('declined once');
      }
    }
    const app = hooks.apps.track(
      await startApp({
        imports: [
          JetStreamModule.forRoot({ servers: testNatsUrl() }),
          JetStreamInboxModule.forRoot({ database: drizzleAdapter(db), table: `${schema}.inbox`, ensureSchema: true, groupCommit }),
        ],
        providers: [Billing],
      }),
    );
    const publisher = app.app.get(JetStreamPublisher);
    await publisher.publish(subject('created'), { id: id('drz-1') }, { msgId: id('drz-1') });
    await publisher.publish(subject('created'), { id: id('drz-flaky') }, { msgId: id('drz-flaky') });
    await publisher.publish(subject('created'), { id: id('drz-1') }, { msgId: id('drz-1-again'), headers: { [IDEMPOTENCY_KEY_HEADER]: id('drz-1') } });
    await settled(stream, 'billing', 3);
    const rows = (await db.select().from(charges)).filter((r) => r.orderId.startsWith(id('drz-')));
    expect(rows.map((r) => `${r.orderId}@${r.attempt}`).sort()).toEqual([`${id('drz-1')}@1`, `${id('drz-flaky')}@2`]);
    // Group commit runs drz-1 again (rolled back) when it shared drz-flaky's failed transaction.
    if (mode === 'group commit') expect(app.app.get(Billing).calls).toBeGreaterThanOrEqual(3);
    else expect(app.app.get(Billing).calls).toBe(3);
  });
});

// TypeORM has no PGlite driver: this part needs PostgreSQL (CI sets DATABASE_URL).
(url ? describe : describe.skip)('inbox through TypeORM (@nestjs/typeorm, PostgreSQL only)', () => {
  @Entity({ name: 'charges', schema: `${schema}_t` })
  class Charge {
    @PrimaryGeneratedColumn() id!: number;
    @Column() orderId!: string;
    @Column() attempt!: number;
  }

  afterAll(async () => {
    const pool = new pg.Pool({ connectionString: url });
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}_t" CASCADE`);
    await pool.end();
  });

  it.each([
    ['a transaction per message', false],
    ['group commit', true],
  ])('hands the handler an EntityManager bound to the transaction; its saves commit with the inbox row (%s)', async (_mode, groupCommit) => {
    const id = (name: string) => `${groupCommit ? 'g' : ''}${name}`;
    const pool = new pg.Pool({ connectionString: url });
    await pool.query(`CREATE SCHEMA IF NOT EXISTS "${schema}_t"`);
    await pool.end();
    const { stream, subject } = await freshStream(hooks.client.jsm, groupCommit ? 'INBOXTORMG' : 'INBOXTORM');
    @Injectable()
    class Billing {
      @OnEvent(subject('created'), { durable: 'billing', inbox: true, retry: { maxAttempts: 3, initialDelayMs: 50, jitter: false } })
      async charge(order: { id: string }, ctx: EventContext, @InboxTransaction() manager: EntityManager): Promise<void> {
        await manager.save(manager.create(Charge, { orderId: order.id, attempt: ctx.attempt }));
        if (order.id.endsWith('orm-flaky') && ctx.attempt === 1) throw new Error('declined once');
      }
    }
    const app = hooks.apps.track(
      await startApp({
        imports: [
          TypeOrmModule.forRoot({ type: 'postgres', url, entities: [Charge], synchronize: true }),
          JetStreamModule.forRoot({ servers: testNatsUrl() }),
          JetStreamInboxModule.forRootAsync({
            inject: [DataSource],
            useFactory: (dataSource: DataSource) => ({ database: typeormAdapter(dataSource), table: `${schema}_t.inbox`, ensureSchema: true, groupCommit }),
          }),
        ],
        providers: [Billing],
      }),
    );
    const publisher = app.app.get(JetStreamPublisher);
    await publisher.publish(subject('created'), { id: id('orm-1') }, { msgId: id('orm-1') });
    await publisher.publish(subject('created'), { id: id('orm-flaky') }, { msgId: id('orm-flaky') });
    await publisher.publish(subject('created'), { id: id('orm-1') }, { msgId: id('orm-1-again'), headers: { [IDEMPOTENCY_KEY_HEADER]: id('orm-1') } });
    await settled(stream, 'billing', 3);
    const rows = (await app.app.get(DataSource).getRepository(Charge).find()).filter((r) => r.orderId.startsWith(id('orm-')));
    expect(rows.map((r) => `${r.orderId}@${r.attempt}`).sort()).toEqual([`${id('orm-1')}@1`, `${id('orm-flaky')}@2`]);
  });
});

describe('adapters refuse what they cannot drive', () => {
  it('names the problem', () => {
    expect(() => typeormAdapter({ driver: { options: { type: 'mysql' } } } as never)).toThrow(/needs a TypeORM DataSource of type "postgres", got "mysql"/);
    expect(() => typeormAdapter({ driver: { options: { type: 'postgres' } } } as never)).toThrow(/the DataSource is not initialized/);
    expect(() => drizzleAdapter({} as never)).toThrow(/drizzleAdapter needs a Drizzle database/);
    expect(tableName('a.b', 'x').sql).toBe('"a"."b"');
    expect(inboxDdl(tableName('a.b', 'x')).length).toBeGreaterThan(0);
    expect(typeof ensureSchema).toBe('function');
  });
});
