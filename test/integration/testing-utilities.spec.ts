// The example from the README's "Testing your handlers" section, run as written: a user's
// consumer tested against a real nats-server with nestjs-jetstream/testing.
import 'reflect-metadata';
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { IsInt, IsString } from 'class-validator';
import { EventContext, JetStreamModule, JetStreamPublisher, OnEvent, PayloadValidationError } from '../../lib/index.js';
import { capturePublished, publishDuplicate, recordHandled, startNatsTestServer, type NatsTestServer } from '../../lib/testing/index.js';
import { uniqueName } from '../harness/index.js';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

class OrderCreated {
  @IsString() id!: string;
  @IsInt() totalCents!: number;
}

@Injectable()
class BillingService {
  constructor(private readonly events: JetStreamPublisher) {}

  @OnEvent('orders.created', { durable: 'billing' })
  async onCreated(order: OrderCreated, _ctx: EventContext): Promise<void> {
    if (order.totalCents < 0) throw new Error('negative total');
    await this.events.publish('billing.charged', { orderId: order.id, cents: order.totalCents }, { msgId: `charged-${order.id}` });
  }
}

@Module({
  imports: [
    // Read when the testing module compiles (as a ConfigService factory would), so the test's
    // server is the one used; a NATS_URL read at import time would be the developer's server.
    JetStreamModule.forRootAsync({
      useFactory: () => ({
        servers: process.env.NATS_URL,
        streams: [
          { name: 'ORDERS', subjects: ['orders.>'] },
          { name: 'BILLING', subjects: ['billing.>'] },
        ],
      }),
    }),
  ],
  providers: [BillingService],
})
class BillingModule {}

describe('BillingService (example user test)', () => {
  let server: NatsTestServer;
  let app: INestApplicationContext;
  const previousUrl = process.env.NATS_URL;

  beforeAll(async () => {
    // NATS_TEST_URL, or its own from NATS_SERVER_BIN / PATH nats-server, or a container; never
    // the app's NATS_URL.
    server = await startNatsTestServer();
    process.env.NATS_URL = server.url;
  });

  afterAll(async () => {
    if (previousUrl === undefined) delete process.env.NATS_URL;
    else process.env.NATS_URL = previousUrl;
    await server.stop();
  });

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({ imports: [BillingModule] }).compile();
    app = await moduleRef.init();
  });

  afterEach(() => app.close());

  it('charges a created order and announces it', async () => {
    const handled = recordHandled(app);
    const published = capturePublished(app);

    await app.get(JetStreamPublisher).publish('orders.created', { id: 'o-1', totalCents: 1250 });

    const [call] = await handled.waitFor({ handler: 'BillingService.onCreated', outcome: 'succeeded' });
    expect(call.payload).toEqual({ id: 'o-1', totalCents: 1250 });
    const [charged] = await published.waitFor({ subject: 'billing.charged' });
    expect(charged.payload).toEqual({ orderId: 'o-1', cents: 1250 });
    expect(charged.result?.stream).toBe('BILLING');
  });

  it('sees failures and invalid payloads, and waits on a predicate', async () => {
    const handled = recordHandled(app);
    const publisher = app.get(JetStreamPublisher);
    await publisher.publish('orders.created', { id: 'bad', totalCents: -1 });
    await publisher.publish('orders.created', { id: 'typo', totalCents: 'x' });
    await publisher.publish('orders.created', { id: 'o-2', totalCents: 5 });

    const failures = await handled.waitFor({ outcome: 'failed', count: 2 });
    expect(failures.map((f) => (f.payload as OrderCreated).id).sort()).toEqual(['bad', 'typo']);
    await handled.waitFor({ predicate: (e) => (e.payload as OrderCreated).id === 'o-2' && e.outcome === 'succeeded' });
    await expect(handled.waitFor({ handler: 'Nobody.here', timeoutMs: 200 })).rejects.toThrow(/0 of 1 matching handler calls/);
  });

  it('can capture without sending', async () => {
    const captured = capturePublished(app, { passThrough: false });
    const ack = await app.get(JetStreamPublisher).publish('nowhere.at.all', { x: 1 });
    expect(ack).toEqual({ stream: 'captured', seq: 1, duplicate: false });
    expect(captured.to('nowhere.at.all')).toHaveLength(1);
    captured.restore();
  });
});

describe('startNatsTestServer', () => {
  const saved = { NATS_URL: process.env.NATS_URL, NATS_TEST_URL: process.env.NATS_TEST_URL };
  afterEach(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  it('ignores the app’s NATS_URL: starts a server of its own and logs which one', async () => {
    // What a `.env` loaded by @nestjs/config leaves behind: the app's dev server (here, nothing
    // listens there; a suite run against it would fail to connect or pollute it).
    process.env.NATS_URL = 'nats://127.0.0.1:1';
    delete process.env.NATS_TEST_URL;
    const lines: string[] = [];
    const server = await startNatsTestServer({ log: (line) => lines.push(line) });
    try {
      expect(server.kind).not.toBe('external');
      expect(server.url).not.toBe(process.env.NATS_URL);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(server.url);
      expect(lines[0]).toMatch(/v\d+\.\d+\.\d+/);
      expect(lines[0]).toContain('NATS_URL (nats://127.0.0.1:1) is the app');
      const nc = await connect({ servers: server.url });
      try {
        expect((await (await jetstreamManager(nc)).getAccountInfo()).api).toBeDefined();
      } finally {
        await nc.close();
      }
    } finally {
      await server.stop();
    }
  });

  it('uses NATS_TEST_URL when set, and says so', async () => {
    const shared = await startNatsTestServer({ log: false });
    try {
      process.env.NATS_TEST_URL = shared.url;
      const lines: string[] = [];
      const server = await startNatsTestServer({ log: (line) => lines.push(line) });
      expect(server).toMatchObject({ kind: 'external', url: shared.url });
      expect(lines[0]).toContain(`NATS_TEST_URL (${shared.url})`);
      await server.stop();
    } finally {
      await shared.stop();
    }
  });
});

describe('recordHandled and publishDuplicate', () => {
  let server: NatsTestServer;
  let app: INestApplicationContext | undefined;
  beforeAll(async () => {
    server = await startNatsTestServer({ log: false });
  });
  afterAll(() => server.stop());
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function start(handler: new (...args: never[]) => unknown, stream: string) {
    @Module({ imports: [JetStreamModule.forRoot({ servers: server.url, streams: [{ name: stream, subjects: [`${stream}.>`] }] })], providers: [handler] })
    class AppModule {}
    app = await (await Test.createTestingModule({ imports: [AppModule] }).compile()).init();
    return app;
  }

  it('reports a message given up on as dead-lettered, with the reason, the error and where its copy went', async () => {
    const stream = uniqueName('TUDL');
    const dlq = { stream: uniqueName('TUDLQ'), subject: `${stream}_dlq.letters` };
    @Injectable()
    class Flaky {
      @OnEvent(`${stream}.paid`, { durable: 'flaky', dlq, retry: { maxAttempts: 2, initialDelayMs: 50 } })
      async onPaid(order: OrderCreated) {
        throw new Error(`ledger down for ${order.id}`);
      }
    }
    const running = await start(Flaky, stream);
    const handled = recordHandled(running);
    const publisher = running.get(JetStreamPublisher);

    await publisher.publish(`${stream}.paid`, { id: 'o-9', totalCents: 1 });
    const letter = await handled.waitForDeadLetter({ handler: 'Flaky.onPaid' });
    expect(letter).toMatchObject({ reason: 'exhausted', attempt: 2, payload: { id: 'o-9', totalCents: 1 }, deadLetter: { stream: dlq.stream, subject: dlq.subject } });
    expect((letter.error as Error).message).toBe('ledger down for o-9');
    expect(letter.deadLetter!.sequence).toBeGreaterThan(0);
    expect(handled.matching({ handler: 'Flaky.onPaid', outcome: 'failed' })).toHaveLength(2);

    await publisher.publish(`${stream}.paid`, { id: 'typo', totalCents: 'x' });
    const invalid = await handled.waitForDeadLetter({ reason: 'invalid-payload' });
    expect(invalid.error).toBeInstanceOf(PayloadValidationError);
    expect(invalid.attempt).toBe(1);
  });

  it(
    'fails a wait with its own diagnostic before the runner’s 5 s test timeout',
    async () => {
      const stream = uniqueName('TUWAIT');
      @Injectable()
      class Quiet {
        @OnEvent(`${stream}.x`, { durable: 'quiet' })
        async onX() {}
      }
      const handled = recordHandled(await start(Quiet, stream));
      await expect(handled.waitFor({ handler: 'Nobody.here' })).rejects.toThrow(/^Timed out after 4000 ms: 0 of 1 matching handler calls \(handler Nobody.here\); recorded: nothing$/);
    },
    5_000,
  );

  it('delivers a copy of an event to an exactly-once handler, which runs once', async () => {
    const stream = uniqueName('TUEO');
    const charged: string[] = [];
    @Injectable()
    class Payments {
      @OnEvent(`${stream}.captured`, { durable: 'payments', delivery: 'exactly-once' })
      async onCaptured(payment: { id: string }, ctx: EventContext) {
        charged.push(`${payment.id}@${ctx.sequence}`);
      }
    }
    const running = await start(Payments, stream);
    const handled = recordHandled(running);
    const publisher = running.get(JetStreamPublisher);

    const original = await publisher.publish(`${stream}.captured`, { id: 'pay-1' }, { msgId: 'pay-1' });
    await handled.waitFor({ handler: 'Payments.onCaptured', outcome: 'succeeded' });
    // Publishing it again cannot test the handler: the stream drops the repeat first.
    expect((await publisher.publish(`${stream}.captured`, { id: 'pay-1' }, { msgId: 'pay-1' })).duplicate).toBe(true);

    const copy = await publishDuplicate(running, `${stream}.captured`, { id: 'pay-1' }, { msgId: 'pay-1' });
    expect(copy).toMatchObject({ duplicate: false, seq: original.seq + 1 });
    const [skipped] = await handled.waitFor({ handler: 'Payments.onCaptured', outcome: 'skipped' });
    expect(skipped.sequence).toBe(copy.seq);
    expect(charged).toEqual([`pay-1@${original.seq}`]);
  });
});
