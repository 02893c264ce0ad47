import 'reflect-metadata';
import { Injectable, UseGuards, UseInterceptors, UsePipes, ValidationPipe, type CallHandler, type CanActivate, type ExecutionContext, type NestInterceptor, type PipeTransform } from '@nestjs/common';
import { tap, type Observable } from 'rxjs';
import {
  DeadLetterService,
  IDEMPOTENCY_KEY_HEADER,
  InboxTransaction,
  JetStreamInbox,
  JetStreamInboxModule,
  JetStreamModule,
  JetStreamPublisher,
  OnEvent,
  type EventContext,
  type JetStreamInboxOptions,
  type OnEventOptions,
} from '../../lib/index.js';
import { testNatsUrl, waitFor } from '../harness/index.js';
import { CapturingLogger, startApp, type TestApp } from '../support/test-app.js';
import { openTestDatabase, type TestDatabase } from '../support/test-database.js';
import { freshStream, Order, sharedServerHooks } from './kit.js';

/**
 * The inbox on the run's database (DATABASE_URL's server, else PGlite): the handler's rows and
 * the message's inbox row commit together, a copy of a handled key is acked without a call, and
 * a failure rolls both back before the usual retry and dead-letter path.
 */
const hooks = sharedServerHooks();
let t: TestDatabase;

/** What every driver's transaction handle offers (a pg PoolClient, a PGlite Transaction). */
interface Tx {
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

beforeAll(async () => {
  t = await openTestDatabase('inbox');
  await t.db.query(`CREATE TABLE ${charges()} (order_id text NOT NULL, attempt int NOT NULL)`);
});
afterAll(async () => {
  await t?.close();
});

function charges(): string {
  return `"${t.schema}".charges`;
}

async function chargeRows(prefix: string): Promise<string[]> {
  const rows = await t.db.query<{ order_id: string }>(`SELECT order_id FROM ${charges()} WHERE order_id LIKE $1 ORDER BY order_id`, [`${prefix}%`]);
  return rows.map((r) => r.order_id);
}

async function inboxRows(consumer: string): Promise<number> {
  const [row] = await t.db.query<{ n: string | number }>(`SELECT count(*) AS n FROM "${t.schema}".inbox WHERE consumer = $1`, [consumer]);
  return Number(row.n);
}

async function startInboxApp(handlers: unknown[], inbox: Partial<JetStreamInboxOptions> | false = {}, logger = new CapturingLogger()): Promise<TestApp> {
  const imports = [JetStreamModule.forRoot({ servers: testNatsUrl() })];
  if (inbox) imports.push(JetStreamInboxModule.forRoot({ database: t.db, table: t.table('inbox'), ensureSchema: true, ...inbox }));
  return hooks.apps.track(await startApp({ imports, providers: handlers as never[] }, logger));
}

/** A handler class per test: charges the order in the inbox transaction, then runs `after`. */
function chargingHandler(subject: string, options: OnEventOptions, after: (ctx: EventContext) => void | Promise<void> = () => undefined) {
  @Injectable()
  class Billing {
    calls = 0;
    @OnEvent(subject, options)
    async charge(order: { id: string }, ctx: EventContext, @InboxTransaction() tx: Tx): Promise<void> {
      this.calls++;
      await tx.query(`INSERT INTO ${charges()} (order_id, attempt) VALUES ($1, $2)`, [order.id, ctx.attempt]);
      await after(ctx);
    }
  }
  return Billing;
}

describe('inbox', () => {
  it('commits the handler rows with the inbox row, and acks a copy of a handled key without calling the handler', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'INBOX');
    const Billing = chargingHandler(subject('created'), { durable: 'billing', inbox: true });
    const app = await startInboxApp([Billing]);
    const publisher = app.app.get(JetStreamPublisher);
    for (let i = 0; i < 5; i++) await publisher.publish(subject('created'), { id: `ok-${i}` }, { msgId: `ok-${i}` });
    // Copies the stream does not dedupe (new msg-ids) but the inbox does: the key a redrive
    // carries names the original's msg-id.
    for (let i = 0; i < 5; i++) await publisher.publish(subject('created'), { id: `ok-${i}` }, { msgId: `ok-${i}-copy`, headers: { [IDEMPOTENCY_KEY_HEADER]: `ok-${i}` } });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'billing')).ack_floor.stream_seq === 10, { timeoutMs: 15_000, message: 'all 10 messages acked' });
    const billing = app.app.get(Billing);
    expect(await chargeRows('ok-')).toEqual(['ok-0', 'ok-1', 'ok-2', 'ok-3', 'ok-4']);
    expect(billing.calls).toBe(5);
    expect(await inboxRows(`${stream}.billing`)).toBe(5);
    expect(app.logger.find(/exactly-once through the inbox/).length).toBe(1);
  });

  it('rolls a failed attempt back, retries it, and keeps exactly the successful attempt\'s rows', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'INBOXRETRY');
    const Billing = chargingHandler(subject('created'), { durable: 'billing', inbox: true, retry: { maxAttempts: 4, initialDelayMs: 50, jitter: false } }, (ctx) => {
      // After its row was written: the rollback must take the row away.
      if (ctx.attempt < 3) throw new Error(`card declined on attempt ${ctx.attempt}`);
    });
    const app = await startInboxApp([Billing]);
    await app.app.get(JetStreamPublisher).publish(subject('created'), { id: 'retry-1' });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'billing')).ack_floor.stream_seq === 1, { timeoutMs: 15_000, message: 'the message acked' });
    const rows = await t.db.query<{ attempt: number }>(`SELECT attempt FROM ${charges()} WHERE order_id = 'retry-1'`);
    expect(rows.map((r) => Number(r.attempt))).toEqual([3]);
    expect(app.app.get(Billing).calls).toBe(3);
    expect(await inboxRows(`${stream}.billing`)).toBe(1);
  });

  it('dead-letters a message whose attempts all fail, with nothing of it committed, and a redrive then runs it', async () => {
    const { stream, subject, dlq, dlqStream } = await freshStream(hooks.client.jsm, 'INBOXDLQ');
    let fail = true;
    const Billing = chargingHandler(subject('created'), { durable: 'billing', inbox: true, dlq, retry: { maxAttempts: 2, initialDelayMs: 50, jitter: false } }, () => {
      if (fail) throw new Error('card declined');
    });
    const app = await startInboxApp([Billing]);
    await app.app.get(JetStreamPublisher).publish(subject('created'), { id: 'dlq-1' }, { msgId: 'dlq-1' });
    const service = app.app.get(DeadLetterService);
    await waitFor(async () => (await service.list({ stream: dlqStream })).length === 1, { timeoutMs: 15_000, message: 'one dead letter' });
    expect(await chargeRows('dlq-')).toEqual([]);
    expect(await inboxRows(`${stream}.billing`)).toBe(0);
    // The redrive carries the original key: the inbox has no row of it, so the handler runs.
    fail = false;
    const [letter] = await service.list({ stream: dlqStream });
    await service.redrive(letter.seq, dlqStream);
    await waitFor(async () => (await chargeRows('dlq-')).length === 1, { timeoutMs: 15_000, message: 'the redrive charged' });
    expect(await inboxRows(`${stream}.billing`)).toBe(1);
  });

  it('runs guards and interceptors around the handler, inside the transaction', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'INBOXPIPE');
    const seen: string[] = [];
    class Blocker implements CanActivate {
      canActivate(context: ExecutionContext): boolean {
        const order = context.switchToRpc().getData<{ id: string }>();
        seen.push(`guard ${order.id}`);
        return order.id !== 'pipe-blocked';
      }
    }
    class Around implements NestInterceptor {
      intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
        return next.handle().pipe(tap(() => seen.push('after')));
      }
    }
    @Injectable()
    class Billing {
      @OnEvent(subject('created'), { durable: 'billing', inbox: true, retry: false })
      @UseGuards(Blocker)
      @UseInterceptors(Around)
      async charge(order: { id: string }, _ctx: EventContext, @InboxTransaction() tx: Tx): Promise<void> {
        await tx.query(`INSERT INTO ${charges()} (order_id, attempt) VALUES ($1, 1)`, [order.id]);
      }
    }
    const app = await startInboxApp([Billing]);
    await app.app.get(JetStreamPublisher).publish(subject('created'), { id: 'pipe-ok' });
    await app.app.get(JetStreamPublisher).publish(subject('created'), { id: 'pipe-blocked' });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'billing')).num_ack_pending === 0 && seen.length === 3, { timeoutMs: 15_000, message: 'both settled' });
    expect(seen).toEqual(['guard pipe-ok', 'after', 'guard pipe-blocked']);
    expect(await chargeRows('pipe-')).toEqual(['pipe-ok']);
    // The refused message was given up (no DLQ configured): its inbox row rolled back with it.
    expect(await inboxRows(`${stream}.billing`)).toBe(1);
  });

  it('a pipe rejecting inside the transaction: a ValidationPipe failure is dead-lettered at once, a throwing pipe is retried; neither leaves an inbox row', async () => {
    const { stream, subject, dlq, dlqStream } = await freshStream(hooks.client.jsm, 'INBOXPIPES');
    let flakyFailures = 1;
    /** Fails the first attempt of "flaky-1" with a plain error, as a pipe calling a lookup might. */
    class Lookup implements PipeTransform {
      transform(value: unknown): unknown {
        if ((value as Order | undefined)?.id === 'flaky-1' && flakyFailures-- > 0) throw new Error('lookup unavailable');
        return value;
      }
    }
    const calls: string[] = [];
    @Injectable()
    class Billing {
      @OnEvent(subject('created'), { durable: 'billing', inbox: true, dlq, retry: { maxAttempts: 3, initialDelayMs: 50, jitter: false } })
      @UsePipes(new ValidationPipe(), new Lookup())
      async charge(order: Order, ctx: EventContext, @InboxTransaction() tx: Tx): Promise<void> {
        calls.push(`${order.id}#${ctx.attempt}`);
        await tx.query(`INSERT INTO ${charges()} (order_id, attempt) VALUES ($1, $2)`, [order.id, ctx.attempt]);
      }
    }
    const app = await startInboxApp([Billing]);
    const publisher = app.app.get(JetStreamPublisher);
    await publisher.publish(subject('created'), { id: 'invalid-1', qty: 'two' }, { msgId: 'invalid-1' });
    await publisher.publish(subject('created'), { id: 'flaky-1', qty: 1 }, { msgId: 'flaky-1' });
    await publisher.publish(subject('created'), { id: 'valid-1', qty: 1 }, { msgId: 'valid-1' });
    const service = app.app.get(DeadLetterService);
    await waitFor(async () => (await service.list({ stream: dlqStream })).length === 1, { timeoutMs: 15_000, message: 'the invalid order dead-lettered' });
    await waitFor(async () => {
      const info = await hooks.client.jsm.consumers.info(stream, 'billing');
      return info.ack_floor.stream_seq === 3 && info.num_ack_pending === 0;
    }, { timeoutMs: 15_000, message: 'all three settled' });
    const [letter] = await service.list({ stream: dlqStream });
    expect({ id: letter.originalMsgId, reason: letter.reason, attempts: letter.attempts }).toEqual({ id: 'invalid-1', reason: 'invalid-payload', attempts: 1 });
    expect(letter.error.message).toContain('qty must be an integer number');
    // The invalid order never reached the handler and left nothing: its transaction rolled back.
    expect([...calls].sort()).toEqual(['flaky-1#2', 'valid-1#1']);
    expect(await chargeRows('invalid-')).toEqual([]);
    const keys = await t.db.query<{ msg_id: string }>(`SELECT msg_id FROM "${t.schema}".inbox WHERE consumer = $1 ORDER BY msg_id`, [`${stream}.billing`]);
    expect(keys.map((r) => r.msg_id)).toEqual(['flaky-1', 'valid-1']);
    expect(app.logger.find('lookup unavailable', 'warn')).toHaveLength(1);
  });

  it('rolls back a call that outran its timeoutMs, even when it finishes later', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'INBOXTIME');
    let slow = true;
    const Billing = chargingHandler(subject('created'), { durable: 'billing', inbox: true, timeoutMs: 300, retry: { maxAttempts: 3, initialDelayMs: 50, jitter: false } }, async () => {
      if (slow) {
        slow = false;
        await new Promise((resolve) => setTimeout(resolve, 800));
      }
    });
    const app = await startInboxApp([Billing]);
    await app.app.get(JetStreamPublisher).publish(subject('created'), { id: 'slow-1' });
    await waitFor(async () => {
      const info = await hooks.client.jsm.consumers.info(stream, 'billing');
      return info.ack_floor.stream_seq === 1 && info.num_ack_pending === 0;
    }, { timeoutMs: 15_000, message: 'a retry acked' });
    // The retry's inbox row waited on the abandoned call's transaction (a row lock on
    // PostgreSQL, the one connection on PGlite), which rolled back when the call ended.
    const rows = await t.db.query<{ attempt: number }>(`SELECT attempt FROM ${charges()} WHERE order_id = 'slow-1'`);
    expect(rows.length).toBe(1);
    expect(Number(rows[0].attempt)).toBeGreaterThan(1);
    expect(app.app.get(Billing).calls).toBeGreaterThanOrEqual(2);
  });
});

describe('inbox retention', () => {
  it('forgets keys past the retention: the cleanup deletes their rows, and a very late copy runs the handler again', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'INBOXLATE');
    const Billing = chargingHandler(subject('created'), { durable: 'billing', inbox: true });
    const app = await startInboxApp([Billing], { retentionMs: 60_000 });
    const publisher = app.app.get(JetStreamPublisher);
    await publisher.publish(subject('created'), { id: 'late-1' }, { msgId: 'late-1' });
    await publisher.publish(subject('created'), { id: 'late-2' }, { msgId: 'late-2' });
    await waitFor(async () => (await chargeRows('late-')).length === 2, { timeoutMs: 15_000, message: 'both charged' });
    // late-1 was handled two minutes ago, past the 1-minute retention; late-2 just now.
    await t.db.query(`UPDATE "${t.schema}".inbox SET handled_at = now() - interval '2 minutes' WHERE consumer = $1 AND msg_id = 'late-1'`, [`${stream}.billing`]);
    await app.app.get(JetStreamInbox).deleteExpired();
    const kept = await t.db.query<{ msg_id: string }>(`SELECT msg_id FROM "${t.schema}".inbox WHERE consumer = $1`, [`${stream}.billing`]);
    expect(kept.map((r) => r.msg_id)).toEqual(['late-2']);
    // Copies arriving after that: the forgotten key runs again, the remembered one does not.
    for (const id of ['late-1', 'late-2']) await publisher.publish(subject('created'), { id }, { msgId: `${id}-copy`, headers: { [IDEMPOTENCY_KEY_HEADER]: id } });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'billing')).ack_floor.stream_seq === 4, { timeoutMs: 15_000, message: 'the copies acked' });
    expect(await chargeRows('late-')).toEqual(['late-1', 'late-1', 'late-2']);
  });

  it('refuses a retention or cleanup interval that is not a positive number of milliseconds', async () => {
    const Billing = chargingHandler('nope.r', { durable: 'x', inbox: true });
    await expect(startInboxApp([Billing], { retentionMs: 0 })).rejects.toThrow(/retentionMs must be a positive integer \(milliseconds\), got 0/);
    await expect(startInboxApp([Billing], { cleanupIntervalMs: -5 })).rejects.toThrow(/cleanupIntervalMs must be a positive integer/);
  });
});

describe('inbox: bad configuration fails at startup', () => {
  it('refuses inbox without a durable, or with another delivery mode', async () => {
    const Ephemeral = chargingHandler('nope.a', { inbox: true });
    await expect(startInboxApp([Ephemeral])).rejects.toThrow(/inbox needs a durable consumer/);
    const Mixed = chargingHandler('nope.b', { durable: 'x', inbox: true, delivery: 'at-least-once' });
    await expect(startInboxApp([Mixed])).rejects.toThrow(/cannot be combined with delivery: 'at-least-once'/);
  });

  it('refuses @InboxTransaction() on a handler without the inbox', async () => {
    const NoInbox = chargingHandler('nope.c', { durable: 'x' });
    await expect(startInboxApp([NoInbox])).rejects.toThrow(/@InboxTransaction\(\) needs the inbox/);
  });

  it('refuses @InboxTransaction() anywhere but the third parameter', () => {
    expect(() => {
      class Misplaced {
        handle(@InboxTransaction() _tx: Tx): void {}
      }
      return Misplaced;
    }).toThrow(/the transaction is the third parameter/);
  });

  it('names the missing module, the missing table, and a bad table name', async () => {
    const { subject } = await freshStream(hooks.client.jsm, 'INBOXBAD');
    const Billing = chargingHandler(subject('created'), { durable: 'billing', inbox: true });
    await expect(startInboxApp([Billing], false)).rejects.toThrow(/import JetStreamInboxModule\.forRoot\(\{ database \}\)/);
    await expect(startInboxApp([Billing], { table: t.table('missing_inbox'), ensureSchema: false })).rejects.toThrow(
      /the inbox table .*missing_inbox does not exist .*inboxDdl\(\) gives the statements\) or set ensureSchema: true/,
    );
    await expect(startInboxApp([Billing], { table: 'Bad Name' })).rejects.toThrow(/must be a lowercase PostgreSQL table name/);
    await expect(startInboxApp([Billing], { database: {} as never })).rejects.toThrow(/database must be a database adapter/);
  });
});
