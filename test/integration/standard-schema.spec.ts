// Payloads validated by a Standard Schema (Zod 4, Valibot) instead of a class: the handler gets
// the schema's output, and a failure is dead-lettered as invalid-payload with each issue's path
// and message, as class-validator failures are. Real server, real Nest apps.
import 'reflect-metadata';
import { Injectable, Module, ValidationPipe } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import * as v from 'valibot';
import { z } from 'zod';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { DeadLetterHeaders, EventContext, JetStreamModule, JetStreamPublisher, OnEvent, type OnEventOptions } from '../../lib/index.js';
import { recordHandled } from '../../lib/testing/index.js';
import { testNatsUrl, waitFor } from '../harness/index.js';
import { CapturingLogger } from '../support/test-app.js';
import { freshStream, sharedServerHooks, waitForDeadLetters } from './kit.js';

const hooks = sharedServerHooks();

const ZodOrder = z.object({
  id: z.string().transform((id) => id.toUpperCase()),
  placedAt: z.iso.datetime().transform((at) => new Date(at)),
  priority: z.enum(['normal', 'rush']).default('normal'),
  items: z.array(z.object({ sku: z.string(), qty: z.number().int().positive() })).min(1),
});
type ZodOrder = z.output<typeof ZodOrder>;

const ValibotOrder = v.object({
  id: v.pipe(v.string(), v.transform((id) => id.toUpperCase())),
  priority: v.optional(v.picklist(['normal', 'rush']), 'normal'),
  items: v.pipe(v.array(v.object({ sku: v.string(), qty: v.pipe(v.number(), v.integer(), v.minValue(1)) })), v.minLength(1)),
});
type ValibotOrder = v.InferOutput<typeof ValibotOrder>;

function handlerOf<T>(subject: string, options: OnEventOptions, calls: T[]) {
  @Injectable()
  class SchemaHandler {
    @OnEvent(subject, options)
    handle(order: T, _ctx: EventContext) {
      calls.push(order);
    }
  }
  return SchemaHandler;
}

async function started(schema: StandardSchemaV1, calls: unknown[], prefix: string) {
  const names = await freshStream(hooks.client.jsm, prefix);
  const subject = names.subject('orders');
  const app = await hooks.apps.start({ servers: testNatsUrl() }, [handlerOf(subject, { durable: 'schema', schema, dlq: names.dlq }, calls)]);
  return { app, names, subject };
}

const valid = { id: 'o-1', placedAt: '2026-12-02T10:00:00.000Z', items: [{ sku: 'A', qty: 2 }] };

describe('Standard Schema payloads', () => {
  it('Zod 4: the handler gets the output type (transforms and defaults applied)', async () => {
    const calls: ZodOrder[] = [];
    const { app, subject } = await started(ZodOrder, calls, 'SSZOK');
    await app.publisher.publish(subject, valid);
    await waitFor(() => calls.length === 1, { timeoutMs: 15_000, message: 'the order handled' });
    expect(calls[0]).toEqual({ id: 'O-1', placedAt: new Date('2026-12-02T10:00:00.000Z'), priority: 'normal', items: [{ sku: 'A', qty: 2 }] });
    expect(calls[0].placedAt).toBeInstanceOf(Date);
  });

  it('Zod 4: an invalid payload is dead-lettered once as invalid-payload, each issue path and message in the headers', async () => {
    const calls: ZodOrder[] = [];
    const { app, names, subject } = await started(ZodOrder, calls, 'SSZBAD');
    await app.publisher.publish(subject, { id: 7, placedAt: 'yesterday', items: [{ sku: 'A', qty: 0 }] });
    const [letter] = await waitForDeadLetters(app, names.dlqStream, 1);
    expect(letter.reason).toBe('invalid-payload');
    expect(letter.attempts).toBe(1);
    const message = letter.headers[DeadLetterHeaders.ErrorMessage][0];
    expect(message).toMatch(/^Payload does not match the zod schema: /);
    expect(message).toMatch(/id: Invalid input: expected string, received number/);
    expect(message).toMatch(/placedAt: Invalid ISO datetime/);
    expect(message).toMatch(/items\.0\.qty: Too small: expected number to be >0/);
    expect(letter.headers[DeadLetterHeaders.ErrorName][0]).toBe('PayloadValidationError');
    expect(calls).toEqual([]);
  });

  it('Valibot: valid payloads transformed, invalid ones dead-lettered with their issue paths', async () => {
    const calls: ValibotOrder[] = [];
    const { app, names, subject } = await started(ValibotOrder, calls, 'SSVB');
    await app.publisher.publish(subject, { id: 'o-2', items: [{ sku: 'B', qty: 1 }] });
    await app.publisher.publish(subject, { id: 'o-3', items: [{ sku: 'B', qty: 1.5 }], priority: 'someday' });
    await waitFor(() => calls.length === 1, { timeoutMs: 15_000, message: 'the valid order handled' });
    expect(calls[0]).toEqual({ id: 'O-2', priority: 'normal', items: [{ sku: 'B', qty: 1 }] });
    const [letter] = await waitForDeadLetters(app, names.dlqStream, 1);
    expect(letter.reason).toBe('invalid-payload');
    const message = letter.headers[DeadLetterHeaders.ErrorMessage][0];
    expect(message).toMatch(/^Payload does not match the valibot schema: /);
    expect(message).toMatch(/priority: Invalid type: Expected \("normal" \| "rush"\)/);
    expect(message).toMatch(/items\.0\.qty: Invalid integer: Received 1\.5/);
    expect(calls).toHaveLength(1);
  });

  it('an empty or non-JSON body fails the schema like any invalid payload', async () => {
    const calls: ZodOrder[] = [];
    const { app, names, subject } = await started(ZodOrder, calls, 'SSZEMPTY');
    await hooks.client.js.publish(subject, new Uint8Array(0));
    await hooks.client.js.publish(subject, new TextEncoder().encode('{not json'));
    const letters = await waitForDeadLetters(app, names.dlqStream, 2);
    expect(letters.map((l) => l.reason)).toEqual(['invalid-payload', 'invalid-payload']);
    expect(letters[0].headers[DeadLetterHeaders.ErrorMessage][0]).toMatch(/Invalid input: expected object, received undefined/);
    expect(letters[1].headers[DeadLetterHeaders.ErrorMessage][0]).toMatch(/not valid JSON/);
    expect(calls).toEqual([]);
  });

  it('under a global ValidationPipe: the schema validates, the pipe (no class to check) lets it through', async () => {
    const names = await freshStream(hooks.client.jsm, 'SSPIPE');
    const subject = names.subject('orders');
    const calls: ZodOrder[] = [];
    @Module({
      imports: [JetStreamModule.forRoot({ servers: testNatsUrl() })],
      providers: [handlerOf(subject, { durable: 'schema', schema: ZodOrder, dlq: names.dlq }, calls)],
    })
    class AppModule {}
    const app = await NestFactory.create(AppModule, { abortOnError: false });
    const logger = new CapturingLogger();
    hooks.apps.track({ app, logger, close: () => app.close() });
    app.useGlobalPipes(new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true }));
    await app.init();
    const handled = recordHandled(app);
    await app.get(JetStreamPublisher).publish(subject, valid);
    await app.get(JetStreamPublisher).publish(subject, { ...valid, items: [] });
    const letter = await handled.waitForDeadLetter();
    expect(letter.reason).toBe('invalid-payload');
    expect(String((letter.error as Error).message)).toMatch(/items: Too small: expected array to have >=1 items/);
    await waitFor(() => calls.length === 1, { timeoutMs: 15_000, message: 'the valid order handled' });
    expect(calls[0].placedAt).toBeInstanceOf(Date);
  });

  it('refuses a schema option that is not a Standard Schema at startup', async () => {
    const names = await freshStream(hooks.client.jsm, 'SSNOT');
    await expect(
      hooks.apps.start({ servers: testNatsUrl() }, [handlerOf(names.subject('x'), { durable: 'schema', schema: { parse: () => 1 } as never }, [])]),
    ).rejects.toThrow(/schema must be a Standard Schema/);
  });
});
