// The app run the usual way (NestFactory.create, Express, a global ValidationPipe), then checked:
// an order placed over HTTP reaches the handler with every EventContext field, through the guard
// and the interceptor, and an invalid payload is dead-lettered. Exits 0 when all of that holds.
import 'reflect-metadata';
import { type INestApplication, ValidationPipe } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DeadLetterService, JetStreamPublisher } from 'nestjs-jetstream';
import { AppModule } from './app.module';
import { expectSeenOrder, OrdersGuard, OrdersHandler, OrdersInterceptor } from './orders';

/** Waits for a condition with a deadline (the work happens on the broker, not on a timer). */
async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function check(app: INestApplication): Promise<string> {
  const id = `o-${process.pid}-${Date.now()}`;
  const response = await fetch(`${await app.getUrl()}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    // The apps share one server across Node versions: a fresh id keeps the msg-id fresh.
    body: JSON.stringify({ id, cents: 1250 }),
  });
  if (response.status !== 202) throw new Error(`POST /orders answered ${response.status}: ${await response.text()}`);
  const { seq } = (await response.json()) as { seq: number };
  const handler = app.get(OrdersHandler);
  const deadLetters = app.get(DeadLetterService);
  const letterOf = async (sequence: number) => (await deadLetters.list({ consumer: 'compat-orders' })).find((l) => l.originalSequence === sequence);
  const outcome = await eventually('the order to be handled or dead-lettered', async () =>
    handler.seen.length > 0 ? 'handled' : (await letterOf(seq)) ? 'dead-lettered' : undefined,
  );
  if (outcome !== 'handled') {
    const letter = await letterOf(seq);
    throw new Error(`the valid order was dead-lettered: ${letter?.reason} ${letter?.error?.name}: ${letter?.error?.message}`);
  }
  expectSeenOrder(handler.seen[0], id, seq);
  if (app.get(OrdersGuard).calls < 1 || app.get(OrdersInterceptor).calls < 1) throw new Error('the guard or the interceptor did not run');

  const bad = await app.get(JetStreamPublisher).publish('shop.orders.placed', { id: 42 });
  const letter = await eventually('the invalid order in the dead-letter stream', () => letterOf(bad.seq));
  if (handler.seen.length !== 1) throw new Error(`the invalid order reached the handler: ${JSON.stringify(handler.seen)}`);
  return `order seq ${seq} handled with every context field; invalid seq ${bad.seq} dead-lettered (${letter.reason}: ${letter.error?.name})`;
}

async function main(): Promise<void> {
  const app = await NestFactory.create(AppModule, { logger: ['error'] });
  app.useGlobalPipes(new ValidationPipe());
  await app.listen(0, '127.0.0.1');
  try {
    console.log(`${process.env.COMPAT_NAME ?? 'compat'} on Node ${process.version}: ${await check(app)}`);
  } finally {
    await app.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
