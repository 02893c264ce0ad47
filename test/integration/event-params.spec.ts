import 'reflect-metadata';
import { Injectable, UseInterceptors, ValidationPipe, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { APP_PIPE } from '@nestjs/core';
import { IsInt, IsString } from 'class-validator';
import { createAsyncApiDocument, EventContext, EventCtx, EventPayload, OnEvent } from '../../lib/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { createStream, sharedServerHooks } from './kit.js';

/**
 * `@EventPayload()` / `@EventCtx()`: the handler's parameters in either order, on the fast path
 * (no enhancer) and through the Nest pipeline with a global ValidationPipe, which must still see
 * the payload's class and never the context.
 */

const shared = sharedServerHooks();

class Order {
  @IsString() id!: string;
  @IsInt() qty!: number;
}

async function setup(prefix: string) {
  const stream = uniqueName(prefix);
  await createStream(shared.client.jsm, stream, [`${stream}.>`]);
  return { stream, subject: (s: string) => `${stream}.${s}` };
}

interface Seen {
  readonly isOrder: boolean;
  readonly id: unknown;
  readonly ctxSubject: string | undefined;
}

function seen(order: Order, ctx: EventContext): Seen {
  return { isOrder: order instanceof Order, id: order.id, ctxSubject: ctx instanceof EventContext ? ctx.subject : undefined };
}

describe('@EventCtx() first, @EventPayload() second', () => {
  it('no enhancer (the direct path): the context first, the payload bound to its class second', async () => {
    const { subject } = await setup('EP_DIRECT');
    const got: Seen[] = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('o'))
      handle(@EventCtx() ctx: EventContext, @EventPayload() order: Order) {
        got.push(seen(order, ctx));
      }
    }
    const app = await shared.apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('o'), { id: 'a', qty: 1 });
    await waitFor(() => got.length === 1, { message: 'handled' });
    expect(got).toEqual([{ isOrder: true, id: 'a', ctxSubject: subject('o') }]);
  });

  it('with a global ValidationPipe and an interceptor: the pipe validates the payload\'s class, the context reaches the handler', async () => {
    const { subject, stream } = await setup('EP_PIPE');
    const got: Seen[] = [];
    const interceptorArgs: unknown[] = [];
    @Injectable()
    class Peek implements NestInterceptor {
      intercept(context: ExecutionContext, next: CallHandler) {
        interceptorArgs.push(context.getArgByIndex(1) instanceof EventContext);
        return next.handle();
      }
    }
    @Injectable()
    class Handler {
      @UseInterceptors(Peek)
      @OnEvent(subject('o'), { durable: 'ep-pipe', retry: false, dlq: { stream: `${stream}_DLQ`, subject: `${stream}_DLQ.letters` } })
      handle(@EventCtx() ctx: EventContext, @EventPayload() order: Order) {
        got.push(seen(order, ctx));
      }
    }
    const app = await shared.apps.start({ servers: testNatsUrl(), validation: false }, [
      Handler,
      Peek,
      { provide: APP_PIPE, useValue: new ValidationPipe({ transform: true }) },
    ]);
    try {
      await app.publisher.publish(subject('o'), { id: 'bad', qty: 'x' });
      await app.publisher.publish(subject('o'), { id: 'good', qty: 2 });
      await waitFor(() => got.length === 1, { message: 'the valid one handled' });
      expect(got).toEqual([{ isOrder: true, id: 'good', ctxSubject: subject('o') }]);
      // The invalid one never reached the handler: the pipe saw the Order class, not the context.
      await waitFor(async () => (await shared.client.jsm.streams.info(`${stream}_DLQ`)).state.messages === 1, { message: 'invalid one dead-lettered' });
      expect(interceptorArgs).toEqual([true, true]);
    } finally {
      await shared.client.jsm.streams.delete(`${stream}_DLQ`).catch(() => undefined);
    }
  });

  it('only @EventCtx() on the first parameter: the payload takes the second place', async () => {
    const { subject } = await setup('EP_CTXONLY');
    const got: Seen[] = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('o'))
      handle(@EventCtx() ctx: EventContext, order: Order) {
        got.push(seen(order, ctx));
      }
    }
    const app = await shared.apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('o'), { id: 'c', qty: 3 });
    await waitFor(() => got.length === 1, { message: 'handled' });
    expect(got).toEqual([{ isOrder: true, id: 'c', ctxSubject: subject('o') }]);
  });

  it('AsyncAPI documents the payload parameter\'s class, wherever it sits', async () => {
    const { subject } = await setup('EP_DOC');
    @Injectable()
    class Handler {
      @OnEvent(subject('o'), { durable: 'ep-doc' })
      handle(@EventCtx() _ctx: EventContext, @EventPayload() _order: Order) {}
    }
    const app = await shared.apps.start({ servers: testNatsUrl() }, [Handler]);
    const doc = await createAsyncApiDocument(app.inner.app, { title: 'params', version: '1' });
    expect(Object.keys(doc.components?.messages ?? {})).toContain('Order');
  });
});

describe('misuse fails when the class is declared', () => {
  it('a marker beyond the first two parameters, or two markers on one parameter', () => {
    expect(() => {
      class Handler {
        handle(_a: unknown, _b: unknown, @EventPayload() _c: unknown) {}
      }
      return Handler;
    }).toThrow('@EventPayload() on Handler.handle: the payload and the context are the first two parameters (got parameter 2)');
    expect(() => {
      class Twice {
        handle(@EventPayload() @EventCtx() _a: unknown) {}
      }
      return Twice;
    }).toThrow('each of @EventPayload() and @EventCtx() marks one parameter, once');
  });
});
