import 'reflect-metadata';
import { Injectable, UseGuards, UseInterceptors, UsePipes, ValidationPipe, type ArgumentMetadata, type CallHandler, type CanActivate, type ExecutionContext, type NestInterceptor, type PipeTransform } from '@nestjs/common';
import { APP_PIPE } from '@nestjs/core';
import { tap, type Observable } from 'rxjs';
import { EventContext, JetStreamDeadLetterInterceptor, JetStreamRetryInterceptor, OnEvent, isJetStreamContext } from '../../lib/index.js';
import { testNatsUrl, waitFor } from '../harness/index.js';
import { freshStream, Order, sharedServerHooks, waitForDeadLetters } from './kit.js';

/** Users' guards, interceptors and pipes around @OnEvent handlers, and the built-ins among them. */
const hooks = sharedServerHooks();

describe('Nest pipeline', () => {
  it('runs users’ interceptors and guards; a denying guard dead-letters with the reason', async () => {
    const { subject, dlqStream, dlq } = await freshStream(hooks.client.jsm, 'PIPE');
    const seen: string[] = [];
    @Injectable()
    class Spy implements NestInterceptor {
      intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
        seen.push(`${context.getType()}:${isJetStreamContext(context)}:${(context.switchToRpc().getData() as Order).id}`);
        return next.handle().pipe(tap(() => seen.push('after')));
      }
    }
    @Injectable()
    class OnlyAllowed implements CanActivate {
      canActivate(context: ExecutionContext): boolean {
        return (context.switchToRpc().getData() as Order).id !== 'denied';
      }
    }
    const handled: string[] = [];
    @Injectable()
    class Handler {
      @UseGuards(OnlyAllowed)
      @UseInterceptors(Spy)
      @OnEvent(subject('g'), { durable: 'pipe', dlq })
      async handle(order: Order) {
        handled.push(order.id);
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler, Spy, OnlyAllowed]);
    await app.publisher.publish(subject('g'), { id: 'denied', qty: 1 });
    await app.publisher.publish(subject('g'), { id: 'ok', qty: 1 });
    await waitFor(() => handled.includes('ok'), { timeoutMs: 10_000, message: 'allowed message handled' });
    expect(seen).toEqual(['jetstream:true:ok', 'after']);
    const [letter] = await waitForDeadLetters(app, dlqStream, 1);
    expect(letter.reason).toBe('forbidden');
    expect(letter.text()).toBe('{"id":"denied","qty":1}');
  });

  it('lets users place the built-in interceptors themselves without running them twice', async () => {
    const { subject, dlqStream, dlq } = await freshStream(hooks.client.jsm, 'ORDERI');
    const order: string[] = [];
    @Injectable()
    class Outer implements NestInterceptor {
      intercept(_c: ExecutionContext, next: CallHandler): Observable<unknown> {
        order.push('outer');
        return next.handle();
      }
    }
    let calls = 0;
    @Injectable()
    class Handler {
      @UseInterceptors(JetStreamDeadLetterInterceptor, Outer, JetStreamRetryInterceptor)
      @OnEvent(subject('o'), { durable: 'orderi', dlq, retry: { maxAttempts: 2, initialDelayMs: 100 } })
      async handle() {
        calls++;
        throw new Error('fails');
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler, Outer, JetStreamDeadLetterInterceptor, JetStreamRetryInterceptor]);
    await app.publisher.publish(subject('o'), { id: 'x', qty: 1 });
    const [letter] = await waitForDeadLetters(app, dlqStream, 1);
    expect(letter.reason).toBe('exhausted');
    expect(calls).toBe(2);
    expect(order).toEqual(['outer', 'outer']);
  });
});

describe('pipes', () => {
  it('runs the user’s pipes on the payload only, before the class binding', async () => {
    const { subject } = await freshStream(hooks.client.jsm, 'PIPES');
    const metas: Array<{ type: unknown; metatype: unknown }> = [];
    @Injectable()
    class Upper implements PipeTransform {
      transform(value: { id: string; qty: number }, metadata: ArgumentMetadata) {
        metas.push({ type: metadata.type, metatype: metadata.metatype });
        return { ...value, id: value.id.toUpperCase() };
      }
    }
    const got: Array<{ order: Order; isOrder: boolean; ctx: boolean }> = [];
    @Injectable()
    class Handler {
      @UsePipes(Upper)
      @OnEvent(subject('p'))
      async handle(order: Order, ctx: EventContext) {
        got.push({ order, isOrder: order instanceof Order, ctx: ctx instanceof EventContext && ctx.subject === subject('p') });
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler, Upper]);
    await app.publisher.publish(subject('p'), { id: 'abc', qty: 2 });
    await waitFor(() => got.length === 1, { timeoutMs: 10_000, message: 'handled' });
    expect(got[0]).toMatchObject({ order: { id: 'ABC', qty: 2 }, isOrder: true, ctx: true });
    expect(metas).toEqual([{ type: 'body', metatype: Order }]);
  });

  it('works with a global ValidationPipe: the context is untouched and a rejection is dead-lettered', async () => {
    const { subject, dlqStream, dlq } = await freshStream(hooks.client.jsm, 'GVP');
    const got: Array<{ order: Order; ctxOk: boolean }> = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('v'), { durable: 'gvp', dlq })
      async handle(order: Order, ctx: EventContext) {
        got.push({ order, ctxOk: ctx instanceof EventContext && ctx.sequence > 0 });
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl(), validation: false }, [
      Handler,
      { provide: APP_PIPE, useValue: new ValidationPipe({ transform: true }) },
    ]);
    await app.publisher.publish(subject('v'), { id: 'bad', qty: 'x' });
    await app.publisher.publish(subject('v'), { id: 'good', qty: 1 });
    await waitFor(() => got.length === 1, { timeoutMs: 10_000, message: 'good one handled' });
    expect(got[0].order).toBeInstanceOf(Order);
    expect(got[0].ctxOk).toBe(true);
    const [letter] = await waitForDeadLetters(app, dlqStream, 1);
    expect(letter.reason).toBe('invalid-payload');
    expect(letter.error.name).toBe('BadRequestException');
  });
});
