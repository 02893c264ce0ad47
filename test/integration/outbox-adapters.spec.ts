import 'reflect-metadata';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Injectable } from '@nestjs/common';
import { Column, DataSource, Entity, EntityManager, PrimaryColumn, type MigrationInterface, type QueryRunner } from 'typeorm';
import { pgSchema, text } from 'drizzle-orm/pg-core';
import pg from 'pg';
import {
  drizzleAdapter,
  inboxDdl,
  InboxTransaction,
  JetStreamInboxModule,
  JetStreamModule,
  JetStreamOutbox,
  JetStreamOutboxModule,
  OnEvent,
  outboxDdl,
  OutboxRelayHost,
  tableName,
  typeormAdapter,
} from '../../lib/index.js';
import { hasDatabaseErrorCode, isDatabaseUnavailable } from '../../lib/database/database-errors.js';
import { freeLoopbackPort, testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { openDrizzle, type DrizzleDatabase, type NodePgDrizzle } from '../support/drizzle-database.js';
import { startApp } from '../support/test-app.js';
import { createStream, sharedServerHooks } from './kit.js';
import { repeated, startOutboxApp, storedEvents } from './outbox-kit.js';

/**
 * The outbox written through an ORM's own transaction object (Drizzle's transaction, TypeORM's
 * EntityManager), as a service using that ORM calls it: the event commits or rolls back with the
 * ORM's writes, and the relay, running on the same adapter, publishes what committed.
 */
const hooks = sharedServerHooks();
const url = process.env.DATABASE_URL;
const schema = uniqueName('outbox_orm').toLowerCase().replace(/[^a-z0-9_]/g, '_');

/** Waits until the stream holds `count` events, then checks nothing more arrives with the relay idle. */
async function relayed(stream: string, count: number, relay: OutboxRelayHost) {
  await waitFor(async () => (await hooks.client.jsm.streams.info(stream)).state.messages >= count, { timeoutMs: 15_000, message: `${count} events relayed` });
  // The relay's own count of published rows settles at the same number: nothing is still in flight.
  await waitFor(() => relay.relay!.stats.published === count, { timeoutMs: 15_000, message: `relay stats at ${count}` });
  return storedEvents(hooks.client.js, hooks.client.jsm, stream);
}

describe('outbox through Drizzle (node-postgres with DATABASE_URL, else PGlite)', () => {
  const orm = pgSchema(schema);
  const orders = orm.table('orders', { id: text('id').primaryKey() });
  let db: DrizzleDatabase;
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ db, close } = await openDrizzle(url));
    const adapter = drizzleAdapter(db);
    await adapter.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await adapter.query(`CREATE TABLE "${schema}".orders (id text PRIMARY KEY)`);
  });
  afterAll(async () => {
    await drizzleAdapter(db).query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await close();
  });

  it('records the event in the Drizzle transaction: committed ones are relayed once, a rolled-back one never', async () => {
    const stream = uniqueName('OUTBOXDRZ');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const app = await startOutboxApp(hooks.apps, { servers: testNatsUrl(), database: drizzleAdapter(db), table: `${schema}.outbox` });
    const place = (id: string, fail = false) =>
      (db as NodePgDrizzle).transaction(async (tx) => {
        await tx.insert(orders).values({ id });
        const result = await app.outbox.publish(tx, `${stream}.created`, { id }, { msgId: id, key: 'customer-1', headers: { 'x-orm': 'drizzle' } });
        if (fail) throw new Error('the order failed after its event was recorded');
        return result;
      });
    expect(await place('drz-1')).toEqual({ msgId: 'drz-1', recorded: true });
    await expect(place('drz-rolled', true)).rejects.toThrow('the order failed');
    expect(await place('drz-2')).toEqual({ msgId: 'drz-2', recorded: true });
    const events = await relayed(stream, 2, app.host);
    expect(events.map((e) => [e.msgId, e.data, e.headers['x-orm']])).toEqual([
      ['drz-1', '{"id":"drz-1"}', ['drizzle']],
      ['drz-2', '{"id":"drz-2"}', ['drizzle']],
    ]);
    expect(repeated(events)).toEqual([]);
    const stored = await db.select().from(orders);
    expect(stored.map((o) => o.id).sort()).toEqual(['drz-1', 'drz-2']);
  });

  it("reads the driver's error through Drizzle's wrapping: a missing table fails startup naming the fix, an unreachable server is an outage", async () => {
    await expect(
      startOutboxApp(hooks.apps, { servers: testNatsUrl(), database: drizzleAdapter(db), table: `${schema}.missing_outbox`, ensureSchema: false }),
    ).rejects.toThrow(/JetStreamOutboxModule: the outbox table .*missing_outbox does not exist in the drizzle database: create it with a migration \(outboxDdl\(\) gives the statements\) or set ensureSchema: true/);
    // Drizzle throws DrizzleQueryError("Failed query: ...") with the driver's error as its cause.
    const missing = await drizzleAdapter(db).query(`SELECT 1 FROM "${schema}".missing_outbox`).catch((err: unknown) => err);
    expect(missing).toHaveProperty('message', expect.stringMatching(/^Failed query/));
    expect(hasDatabaseErrorCode(missing, '42P01')).toBe(true);
    expect(isDatabaseUnavailable(missing)).toBe(false);
    // A server that refuses connections (node-postgres on a port nothing listens on).
    const port = await freeLoopbackPort();
    const pool = new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:${port}/test`, connectionTimeoutMillis: 5_000 });
    try {
      const refused = await drizzleAdapter(drizzlePg(pool)).query('SELECT 1').catch((err: unknown) => err);
      expect(refused).toHaveProperty('message', expect.stringMatching(/^Failed query/));
      expect(hasDatabaseErrorCode(refused, 'ECONNREFUSED')).toBe(true);
      expect(isDatabaseUnavailable(refused)).toBe(true);
    } finally {
      await pool.end();
    }
  });
});

// TypeORM has no PGlite driver: this part needs PostgreSQL (CI sets DATABASE_URL).
(url ? describe : describe.skip)('outbox through TypeORM (@nestjs/typeorm, PostgreSQL only)', () => {
  @Entity({ name: 'orders', schema: `${schema}_t` })
  class Order {
    @PrimaryColumn() id!: string;
    @Column() totalCents!: number;
  }

  beforeAll(async () => {
    const pool = new pg.Pool({ connectionString: url });
    await pool.query(`CREATE SCHEMA IF NOT EXISTS "${schema}_t"`);
    await pool.end();
  });
  afterAll(async () => {
    const pool = new pg.Pool({ connectionString: url });
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}_t" CASCADE`);
    await pool.query(`DROP TABLE IF EXISTS "${schema}_migrations"`);
    await pool.end();
  });

  it('runs the TypeORM migration of the docs: with both tables made by it, the outbox and an inbox handler work without ensureSchema', async () => {
    const outboxTable = `${schema}_t.migrated_outbox`;
    const inboxTable = `${schema}_t.migrated_inbox`;
    // docs/outbox-and-inbox.md, "Schema", on this test's table names.
    class JetStreamOutboxInbox1733100000000 implements MigrationInterface {
      async up(queryRunner: QueryRunner): Promise<void> {
        for (const statement of [...outboxDdl(tableName(outboxTable, 'outbox')), ...inboxDdl(tableName(inboxTable, 'inbox'))]) {
          await queryRunner.query(statement);
        }
      }

      async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP TABLE IF EXISTS ${tableName(inboxTable, 'inbox').sql}`);
        await queryRunner.query(`DROP TABLE IF EXISTS ${tableName(outboxTable, 'outbox').sql}`);
      }
    }
    const stream = uniqueName('OUTBOXMIG');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const charged: string[] = [];
    @Injectable()
    class Billing {
      @OnEvent(`${stream}.created`, { durable: 'billing', inbox: true })
      async charge(order: { id: string }, _ctx: unknown, @InboxTransaction() manager: EntityManager): Promise<void> {
        await manager.save(manager.create(Order, { id: `charge-${order.id}`, totalCents: 0 }));
        charged.push(order.id);
      }
    }
    const app = hooks.apps.track(
      await startApp({
        imports: [
          TypeOrmModule.forRoot({
            type: 'postgres',
            url,
            entities: [Order],
            synchronize: true,
            migrations: [JetStreamOutboxInbox1733100000000],
            migrationsRun: true,
            migrationsTableName: `${schema}_migrations`,
          }),
          JetStreamModule.forRoot({ servers: testNatsUrl() }),
          JetStreamOutboxModule.forRootAsync({
            inject: [DataSource],
            useFactory: (dataSource: DataSource) => ({ database: typeormAdapter(dataSource), table: outboxTable }),
          }),
          JetStreamInboxModule.forRootAsync({
            inject: [DataSource],
            useFactory: (dataSource: DataSource) => ({ database: typeormAdapter(dataSource), table: inboxTable }),
          }),
        ],
        providers: [Billing],
      }),
    );
    const dataSource = app.app.get(DataSource);
    const outbox = app.app.get<JetStreamOutbox<EntityManager>>(JetStreamOutbox);
    await dataSource.transaction(async (manager) => {
      await manager.save(manager.create(Order, { id: 'mig-1', totalCents: 990 }));
      await outbox.publish(manager, `${stream}.created`, { id: 'mig-1' }, { msgId: 'mig-1' });
    });
    // The handler is called before its transaction commits: wait for the committed inbox row.
    const inboxRows = () => dataSource.query(`SELECT msg_id FROM ${tableName(inboxTable, 'inbox').sql}`) as Promise<Array<{ msg_id: string }>>;
    await waitFor(async () => (await inboxRows()).length > 0, { timeoutMs: 15_000, message: 'the inbox row of mig-1 committed' });
    expect(await inboxRows()).toEqual([{ msg_id: 'mig-1' }]);
    expect(charged).toEqual(['mig-1']);
    expect(await dataSource.getRepository(Order).findOneBy({ id: 'charge-mig-1' })).not.toBeNull();
    const migrations = await dataSource.query(`SELECT name FROM "${schema}_migrations"`);
    expect(migrations).toEqual([{ name: 'JetStreamOutboxInbox1733100000000' }]);
  });

  it('takes the EntityManager of DataSource.transaction: the event commits with the saved entity, and a rollback leaves neither', async () => {
    const stream = uniqueName('OUTBOXTORM');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const app = hooks.apps.track(
      await startApp({
        imports: [
          TypeOrmModule.forRoot({ type: 'postgres', url, entities: [Order], synchronize: true }),
          JetStreamModule.forRoot({ servers: testNatsUrl() }),
          JetStreamOutboxModule.forRootAsync({
            inject: [DataSource],
            useFactory: (dataSource: DataSource) => ({ database: typeormAdapter(dataSource), table: `${schema}_t.outbox`, ensureSchema: true }),
          }),
        ],
      }),
    );
    const dataSource = app.app.get(DataSource);
    const outbox = app.app.get<JetStreamOutbox<EntityManager>>(JetStreamOutbox);
    const place = (id: string, fail = false) =>
      dataSource.transaction(async (manager) => {
        await manager.save(manager.create(Order, { id, totalCents: 1250 }));
        await outbox.publish(manager, `${stream}.created`, { id }, { msgId: id });
        if (fail) throw new Error('the order failed after its event was recorded');
      });
    await place('orm-1');
    await expect(place('orm-rolled', true)).rejects.toThrow('the order failed');
    await place('orm-2');
    // The same msgId in a later transaction records nothing: a retried checkout cannot publish twice.
    const again = await dataSource.transaction((manager) => outbox.publish(manager, `${stream}.created`, { id: 'orm-1' }, { msgId: 'orm-1' }));
    expect(again).toEqual({ msgId: 'orm-1', recorded: false });
    const events = await relayed(stream, 2, app.app.get(OutboxRelayHost));
    expect(events.map((e) => [e.msgId, e.data])).toEqual([
      ['orm-1', '{"id":"orm-1"}'],
      ['orm-2', '{"id":"orm-2"}'],
    ]);
    const saved = (await dataSource.getRepository(Order).find()).filter((o) => o.id.startsWith('orm-'));
    expect(saved.map((o) => o.id).sort()).toEqual(['orm-1', 'orm-2']);
  });
});
