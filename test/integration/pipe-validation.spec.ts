// A user's own ValidationPipe rejecting an event: the dead letter, the logs and the recorder must
// say which fields were wrong (not only "Bad Request Exception"), with the same reason as the
// module's own validation and no retry. Real Nest apps, the way users set the pipe up.
import 'reflect-metadata';
import { Injectable, Module, ValidationPipe, type INestApplicationContext } from '@nestjs/common';
import { APP_PIPE, NestFactory } from '@nestjs/core';
import { IsInt, IsString } from 'class-validator';
import { DeadLetterHeaders, DeadLetterService, EventContext, JetStreamModule, JetStreamPublisher, OnEvent, type DeadLetter } from '../../lib/index.js';
import { recordHandled } from '../../lib/testing/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { CapturingLogger } from '../support/test-app.js';
import { createStream, openClient, type RawClient } from './kit.js';

class Order {
  @IsString() id!: string;
  @IsInt() qty!: number;
}

let client: RawClient;
const closers: Array<() => Promise<unknown>> = [];
beforeAll(async () => {
  client = await openClient(testNatsUrl());
});
afterAll(() => client.close());
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
});

async function names(prefix: string) {
  const stream = uniqueName(prefix);
  await createStream(client.jsm, stream, [`${stream}.>`]);
  const dlqStream = uniqueName('PVDL');
  return { stream, subject: `${stream}.orders`, dlqStream, dlq: { stream: dlqStream, subject: `${dlqStream}.letters` } };
}

function handlerFor(subject: string, dlq: { stream: string; subject: string }, calls: Order[]) {
  @Injectable()
  class Handler {
    @OnEvent(subject, { durable: 'pv', dlq, retry: { maxAttempts: 3, initialDelayMs: 50 } })
    async handle(order: Order, _ctx: EventContext) {
      calls.push(order);
    }
  }
  return Handler;
}

async function oneDeadLetter(app: INestApplicationContext, dlqStream: string): Promise<DeadLetter> {
  const service = app.get(DeadLetterService);
  let letters: DeadLetter[] = [];
  await waitFor(async () => (letters = await service.list({ stream: dlqStream })).length >= 1, { timeoutMs: 15_000, message: 'a dead letter' });
  expect(letters).toHaveLength(1);
  return letters[0];
}

/** Dead-lettered at once, never retried, with each field's message in the letter and the log. */
async function expectFieldMessages(app: INestApplicationContext, logger: CapturingLogger, names: { stream: string; dlqStream: string }, fields: string[]) {
  const letter = await oneDeadLetter(app, names.dlqStream);
  expect(letter.reason).toBe('invalid-payload');
  expect(letter.attempts).toBe(1);
  for (const field of fields) expect(letter.headers[DeadLetterHeaders.ErrorMessage][0]).toContain(field);
  // The listing shows 60 characters: the field messages come first, not "Bad Request Exception".
  expect(letter.error.message.startsWith(fields[0])).toBe(true);
  const info = await client.jsm.consumers.info(names.stream, 'pv');
  expect(info.num_redelivered).toBe(0);
  expect(info.num_ack_pending).toBe(0);
  const logged = logger.lines.filter((l) => l.message.includes('dead-lettered')).map((l) => l.message).join('\n');
  for (const field of fields) expect(logged).toContain(field);
}

describe('a global ValidationPipe rejecting an event', () => {
  it('app.useGlobalPipes(new ValidationPipe()): each field message in the dead letter and the log, reason invalid-payload, no retry', async () => {
    const n = await names('PVGLOBAL');
    const calls: Order[] = [];
    @Module({ imports: [JetStreamModule.forRoot({ servers: testNatsUrl() })], providers: [handlerFor(n.subject, n.dlq, calls)] })
    class AppModule {}
    const logger = new CapturingLogger();
    const app = await NestFactory.create(AppModule, { logger, abortOnError: false });
    closers.push(() => app.close());
    app.useGlobalPipes(new ValidationPipe());
    await app.init();
    const handled = recordHandled(app);

    await app.get(JetStreamPublisher).publish(n.subject, { id: 5, qty: 'x' });

    await expectFieldMessages(app, logger, n, ['id must be a string', 'qty must be an integer number']);
    const event = await handled.waitForDeadLetter();
    expect(event).toMatchObject({ reason: 'invalid-payload', attempt: 1 });
    expect(calls).toEqual([]);
  });

  it('APP_PIPE with the user’s options (forbidNonWhitelisted, a 422 status): their messages, the same reason', async () => {
    const n = await names('PVAPPPIPE');
    const calls: Order[] = [];
    @Module({
      imports: [JetStreamModule.forRoot({ servers: testNatsUrl() })],
      providers: [
        handlerFor(n.subject, n.dlq, calls),
        { provide: APP_PIPE, useValue: new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, errorHttpStatusCode: 422 }) },
      ],
    })
    class AppModule {}
    const logger = new CapturingLogger();
    const app = await NestFactory.createApplicationContext(AppModule, { logger, abortOnError: false });
    closers.push(() => app.close());
    await app.init();

    await app.get(JetStreamPublisher).publish(n.subject, { id: 'o-1', qty: 1, extra: true });

    await expectFieldMessages(app, logger, n, ['property extra should not exist']);
    expect(calls).toEqual([]);
  });
});
