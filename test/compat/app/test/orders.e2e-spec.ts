// One spec for every compat app and runner (Jest and Vitest, with globals): the round trip
// through nestjs-jetstream/testing, with the app's usual enhancers in place.
import { type INestApplication, ValidationPipe } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { JetStreamPublisher } from 'nestjs-jetstream';
import { type NatsTestServer, recordHandled, startNatsTestServer } from 'nestjs-jetstream/testing';
import { AppModule } from '../src/app.module';
import { expectSeenOrder, OrdersHandler } from '../src/orders';

describe('orders (e2e)', () => {
  let server: NatsTestServer;
  let app: INestApplication;

  beforeAll(async () => {
    server = await startNatsTestServer();
    process.env.NATS_URL = server.url;
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication({ logger: ['error'] });
    app.useGlobalPipes(new ValidationPipe());
    await app.init();
  }, 30_000);

  afterAll(async () => {
    await app?.close();
    await server?.stop();
  });

  it('hands a published order and its whole EventContext to the handler', async () => {
    const handled = recordHandled(app);
    const ack = await app.get(JetStreamPublisher).publish('shop.orders.placed', { id: 'o-7', cents: 700 }, { msgId: 'order-o-7', headers: { 'X-Compat-Trace': 'trace-o-7' } });
    const [call] = await handled.waitFor({ handler: 'OrdersHandler.onPlaced', timeoutMs: 4_000 });
    expect(call.error).toBeUndefined();
    expect(call.outcome).toBe('succeeded');
    expectSeenOrder(app.get(OrdersHandler).seen[0], 'o-7', ack.seq);
  });

  it('fails an invalid order without calling the handler', async () => {
    const handled = recordHandled(app);
    const ack = await app.get(JetStreamPublisher).publish('shop.orders.placed', { id: 42 });
    const [call] = await handled.waitFor({ predicate: (event) => event.sequence === ack.seq, timeoutMs: 4_000 });
    expect(call.outcome).not.toBe('succeeded');
    expect(app.get(OrdersHandler).seen).toHaveLength(1);
  });
});
