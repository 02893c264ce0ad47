import 'reflect-metadata';
import {
  Controller,
  Injectable,
  UseGuards,
  UseInterceptors,
  type CallHandler,
  type CanActivate,
  type ExecutionContext,
  type NestInterceptor,
  type Type,
} from '@nestjs/common';
import { Type as TransformType } from 'class-transformer';
import { IsDate, IsInt, IsNotEmpty, IsString, Min, ValidateNested } from 'class-validator';
import type { Subscription } from '@nats-io/transport-node';
import { tap, type Observable } from 'rxjs';
import {
  EventContext,
  isJetStreamContext,
  JetStreamLifecycle,
  JetStreamModule,
  JetStreamPublisher,
  OnEvent,
} from '../../lib/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { sharedServerHooks } from './kit.js';

/**
 * What a handler receives and what happens to the message afterwards: discovery, payload
 * binding (classes, bytes, plain JSON), the EventContext, wildcards, retries, and the Nest
 * pipeline (guards, interceptors) around every call.
 */

class OrderLine {
  @IsString()
  sku!: string;

  @IsInt()
  @Min(1)
  qty!: number;
}

class OrderPlaced {
  @IsString()
  @IsNotEmpty()
  orderId!: string;

  @IsInt()
  @Min(1)
  quantity!: number;

  @ValidateNested({ each: true })
  @TransformType(() => OrderLine)
  lines!: OrderLine[];

  @TransformType(() => Date)
  @IsDate()
  placedAt!: Date;

  total(): number {
    return this.lines.reduce((sum, l) => sum + l.qty, 0);
  }
}

interface LooseEvent {
  a: number;
  nested: { b: string[] };
}

const WAIT = 5_000;

const subscriptions: Subscription[] = [];

const hooks = sharedServerHooks();

afterEach(() => {
  for (const sub of subscriptions.splice(0)) sub.unsubscribe();
});

/** A fresh stream capturing `<name>.>`; returns its name, which is also the subject prefix. */
function streamName(prefix: string): string {
  return uniqueName(prefix);
}

async function start(stream: string, providers: Array<Type<unknown>>, controllers: Array<Type<unknown>> = []): Promise<TestApp> {
  const app = await startApp({
    imports: [JetStreamModule.forRoot({ servers: testNatsUrl(), streams: [{ name: stream, subjects: [`${stream}.>`] }] })],
    providers,
    controllers,
  });
  hooks.apps.track(app);
  return app;
}

function publisher(app: TestApp): JetStreamPublisher {
  return app.app.get(JetStreamPublisher);
}

/** Consumer name of the app's only handler. */
function consumerOf(app: TestApp): string {
  const handlers = app.app.get(JetStreamLifecycle).handlers;
  expect(handlers).toHaveLength(1);
  return handlers[0].consumer;
}

/**
 * Collects the server's "message terminated" advisories for a stream, so a test can tell a
 * terminated message from an acked one.
 */
async function watchTerminations(stream: string): Promise<Array<{ stream_seq: number; reason?: string }>> {
  const seen: Array<{ stream_seq: number; reason?: string }> = [];
  const sub = hooks.client.nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.${stream}.*`, {
    callback: (_err, msg) => {
      if (msg) seen.push(msg.json());
    },
  });
  subscriptions.push(sub);
  await hooks.client.nc.flush();
  return seen;
}

async function waitSettled(stream: string, consumer: string, lastSeq: number): Promise<void> {
  await waitFor(
    async () => {
      const info = await hooks.client.jsm.consumers.info(stream, consumer);
      return info.num_ack_pending === 0 && info.ack_floor.stream_seq === lastSeq;
    },
    { timeoutMs: WAIT, message: `consumer ${consumer} to settle everything up to seq ${lastSeq}` },
  );
}

describe('handler discovery', () => {
  it('finds @OnEvent methods on providers and on controllers', async () => {
    const stream = streamName('HDL_DISC');
    const got: string[] = [];
    @Injectable()
    class ProviderHandler {
      @OnEvent(`${stream}.from-provider`)
      handle(payload: { who: string }): void {
        got.push(`provider:${payload.who}`);
      }
    }
    @Controller()
    class ControllerHandler {
      @OnEvent(`${stream}.from-controller`)
      handle(payload: { who: string }): void {
        got.push(`controller:${payload.who}`);
      }
    }
    const app = await start(stream, [ProviderHandler], [ControllerHandler]);

    expect(
      app.app
        .get(JetStreamLifecycle)
        .handlers.map((h) => h.handlerId)
        .sort(),
    ).toEqual(['ControllerHandler.handle', 'ProviderHandler.handle']);
    await publisher(app).publish(`${stream}.from-provider`, { who: 'p' });
    await publisher(app).publish(`${stream}.from-controller`, { who: 'c' });
    await waitFor(() => got.length === 2, { timeoutMs: WAIT, message: 'both handlers to receive their event' });
    expect(got.sort()).toEqual(['controller:c', 'provider:p']);
  });
});

describe('payload binding', () => {
  it('binds JSON to the declared payload class: an instance with nested instances and dates', async () => {
    const stream = streamName('HDL_TYPED');
    const got: unknown[] = [];
    @Injectable()
    class Orders {
      @OnEvent(`${stream}.placed`)
      handle(event: OrderPlaced): void {
        got.push(event);
      }
    }
    const app = await start(stream, [Orders]);
    const placedAt = new Date('2025-03-04T05:06:07.089Z');
    await publisher(app).publish(`${stream}.placed`, {
      orderId: 'o-42',
      quantity: 3,
      lines: [
        { sku: 'a', qty: 1 },
        { sku: 'b', qty: 2 },
      ],
      placedAt,
    });
    await waitFor(() => got.length === 1, { timeoutMs: WAIT, message: 'Orders.handle to receive o-42' });

    const event = got[0] as OrderPlaced;
    expect(event).toBeInstanceOf(OrderPlaced);
    expect(event.orderId).toBe('o-42');
    expect(event.quantity).toBe(3);
    expect(event.lines).toHaveLength(2);
    expect(event.lines[0]).toBeInstanceOf(OrderLine);
    expect(event.lines.map((l) => [l.sku, l.qty])).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
    expect(event.placedAt).toBeInstanceOf(Date);
    expect(event.placedAt.getTime()).toBe(placedAt.getTime());
    expect(event.total()).toBe(3);
  });

  it('an invalid payload never reaches the handler: it is terminated (not redelivered) and the property is logged', async () => {
    const stream = streamName('HDL_INVALID');
    const subject = `${stream}.placed`;
    const got: OrderPlaced[] = [];
    @Injectable()
    class Orders {
      @OnEvent(subject)
      handle(event: OrderPlaced): void {
        got.push(event);
      }
    }
    const terminated = await watchTerminations(stream);
    const app = await start(stream, [Orders]);
    const consumer = consumerOf(app);

    const bad = await publisher(app).publish(subject, { orderId: 'bad', quantity: 0, lines: [], placedAt: new Date() });
    // Sentinel on the same consumer: once it is handled, the bad one has been dealt with.
    const good = await publisher(app).publish(subject, { orderId: 'good', quantity: 1, lines: [], placedAt: new Date() });
    await waitFor(() => got.length >= 1, { timeoutMs: WAIT, message: 'the valid sentinel to be handled' });
    await waitSettled(stream, consumer, good.seq);
    await waitFor(() => terminated.some((t) => t.stream_seq === bad.seq), {
      timeoutMs: WAIT,
      message: `a MSG_TERMINATED advisory for seq ${bad.seq}`,
    });

    expect(got.map((e) => e.orderId)).toEqual(['good']);
    const info = await hooks.client.jsm.consumers.info(stream, consumer);
    expect(info.num_redelivered).toBe(0);
    expect(info.num_ack_pending).toBe(0);
    expect(info.delivered.stream_seq).toBe(good.seq);
    const errors = app.logger.lines.filter((l) => l.level === 'error' && l.message.includes(subject) && l.message.includes('quantity'));
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toContain(`seq ${bad.seq}`);
  });

  it.each<[string, Uint8Array, RegExp]>([
    ['bytes that are not JSON', new TextEncoder().encode('{"orderId": "x", oops'), /not valid JSON/],
    ['bytes that are not UTF-8', new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), /not valid UTF-8/],
    ['a JSON array', new TextEncoder().encode('[1,2,3]'), /must be a JSON object, got an array/],
    ['JSON null', new TextEncoder().encode('null'), /must be a JSON object, got null/],
    ['an empty payload', new Uint8Array(0), /must be a JSON object, got an empty payload/],
  ])('%s, sent to a class-typed handler, is terminated and logged', async (_label, body, reason) => {
    const stream = streamName('HDL_NOTJSON');
    const subject = `${stream}.placed`;
    const got: OrderPlaced[] = [];
    @Injectable()
    class Orders {
      @OnEvent(subject)
      handle(event: OrderPlaced): void {
        got.push(event);
      }
    }
    const terminated = await watchTerminations(stream);
    const app = await start(stream, [Orders]);
    const consumer = consumerOf(app);

    const bad = await publisher(app).publish(subject, body);
    const good = await publisher(app).publish(subject, { orderId: 'good', quantity: 1, lines: [], placedAt: new Date() });
    await waitFor(() => got.length >= 1, { timeoutMs: WAIT, message: 'the valid sentinel to be handled' });
    await waitSettled(stream, consumer, good.seq);
    await waitFor(() => terminated.some((t) => t.stream_seq === bad.seq), {
      timeoutMs: WAIT,
      message: `a MSG_TERMINATED advisory for seq ${bad.seq}`,
    });

    expect(got.map((e) => e.orderId)).toEqual(['good']);
    expect((await hooks.client.jsm.consumers.info(stream, consumer)).num_redelivered).toBe(0);
    const errors = app.logger.lines.filter((l) => l.level === 'error' && l.message.includes(subject) && reason.test(l.message));
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toContain(`seq ${bad.seq}`);
  });

  it('a handler typed unknown gets the same treatment for bytes that are not JSON', async () => {
    const stream = streamName('HDL_LOOSEBAD');
    const subject = `${stream}.x`;
    const got: unknown[] = [];
    @Injectable()
    class Loose {
      @OnEvent(subject)
      handle(payload: unknown): void {
        got.push(payload);
      }
    }
    const terminated = await watchTerminations(stream);
    const app = await start(stream, [Loose]);
    const bad = await publisher(app).publish(subject, new TextEncoder().encode('not json'));
    const good = await publisher(app).publish(subject, { ok: true });
    await waitFor(() => got.length >= 1, { timeoutMs: WAIT, message: 'the valid sentinel to be handled' });
    await waitSettled(stream, consumerOf(app), good.seq);
    await waitFor(() => terminated.some((t) => t.stream_seq === bad.seq), {
      timeoutMs: WAIT,
      message: `a MSG_TERMINATED advisory for seq ${bad.seq}`,
    });
    expect(got).toEqual([{ ok: true }]);
  });

  it('a handler typed Uint8Array receives the bytes unchanged, non-UTF-8 included', async () => {
    const stream = streamName('HDL_BYTES');
    const got: unknown[] = [];
    @Injectable()
    class Blobs {
      @OnEvent(`${stream}.blob`)
      handle(data: Uint8Array): void {
        got.push(data);
      }
    }
    const app = await start(stream, [Blobs]);
    const sent = new Uint8Array([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x7b, 0x22, 0x0a, 0xed, 0xa0, 0x80]);
    const json = { looks: 'like json' };
    await publisher(app).publish(`${stream}.blob`, sent);
    await publisher(app).publish(`${stream}.blob`, json);
    await waitFor(() => got.length === 2, { timeoutMs: WAIT, message: 'Blobs.handle to receive both messages' });

    expect(got[0]).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(got[0] as Uint8Array).equals(Buffer.from(sent))).toBe(true);
    // JSON published to a bytes handler arrives as its encoded bytes, not parsed.
    expect(got[1]).toBeInstanceOf(Uint8Array);
    expect(new TextDecoder().decode(got[1] as Uint8Array)).toBe(JSON.stringify(json));
  });

  it('a handler typed with an interface or unknown receives the parsed JSON as is', async () => {
    const stream = streamName('HDL_PLAIN');
    const viaInterface: unknown[] = [];
    const viaUnknown: unknown[] = [];
    @Injectable()
    class Loose {
      @OnEvent(`${stream}.iface`)
      onInterface(payload: LooseEvent): void {
        viaInterface.push(payload);
      }

      @OnEvent(`${stream}.unknown`)
      onUnknown(payload: unknown): void {
        viaUnknown.push(payload);
      }
    }
    const app = await start(stream, [Loose]);
    const event: LooseEvent = { a: 1, nested: { b: ['x', 'y'] } };
    await publisher(app).publish(`${stream}.iface`, event);
    for (const value of [event, [1, 'two', null], 42, 'text', null]) {
      await publisher(app).publish(`${stream}.unknown`, value);
    }
    await waitFor(() => viaInterface.length === 1 && viaUnknown.length === 5, {
      timeoutMs: WAIT,
      message: 'both loose handlers to receive everything',
    });

    expect(viaInterface[0]).toEqual(event);
    expect(Object.getPrototypeOf(viaInterface[0])).toBe(Object.prototype);
    expect(viaUnknown).toEqual([event, [1, 'two', null], 42, 'text', null]);
  });
});

describe('EventContext', () => {
  it('describes the message and the durable consumer it came from', async () => {
    const stream = streamName('HDL_CTX');
    const subject = `${stream}.orders.created`;
    const durable = uniqueName('ctx');
    const captured: Array<Record<string, unknown>> = [];
    @Injectable()
    class Audit {
      @OnEvent(`${stream}.orders.*`, { durable })
      handle(_payload: unknown, ctx: EventContext): void {
        captured.push({
          isContext: ctx instanceof EventContext,
          subject: ctx.subject,
          stream: ctx.stream,
          sequence: ctx.sequence,
          deliveryCount: ctx.deliveryCount,
          redelivered: ctx.redelivered,
          timestamp: ctx.timestamp,
          msgId: ctx.msgId,
          headers: ctx.headers,
          trace: ctx.header('x-trace'),
          multi: ctx.header('x-multi'),
          missing: ctx.header('x-missing'),
          durable: ctx.durable,
          consumer: ctx.consumer,
          handler: ctx.handler,
        });
      }
    }
    const app = await start(stream, [Audit]);
    // Published by another hooks.client without a msgId or headers.
    await hooks.client.js.publish(`${stream}.orders.seed`, JSON.stringify({ seed: true }));
    const before = Date.now();
    const ack = await publisher(app).publish(
      subject,
      { id: 1 },
      { msgId: 'order-1-created', headers: { 'x-trace': 'trace-abc', 'x-multi': ['one', 'two'] } },
    );
    const after = Date.now();
    await waitFor(() => captured.length === 2, { timeoutMs: WAIT, message: 'Audit.handle to receive both messages' });

    const ctx = captured[1];
    expect(ctx).toMatchObject({
      isContext: true,
      subject,
      stream,
      sequence: ack.seq,
      deliveryCount: 1,
      redelivered: false,
      msgId: 'order-1-created',
      trace: 'trace-abc',
      multi: 'one',
      missing: undefined,
      durable,
      consumer: durable,
      handler: 'Audit.handle',
    });
    expect(ack.seq).toBe(2);
    expect(ctx.timestamp).toBeInstanceOf(Date);
    const ts = (ctx.timestamp as Date).getTime();
    // Stored by the server between the publish call and its ack (same host; 1 s of slack).
    expect(ts).toBeGreaterThanOrEqual(before - 1_000);
    expect(ts).toBeLessThanOrEqual(after + 1_000);
    expect(ctx.headers).toMatchObject({ 'x-trace': ['trace-abc'], 'x-multi': ['one', 'two'], 'Nats-Msg-Id': ['order-1-created'] });
    // The seed message had no msgId and no headers.
    expect(captured[0]).toMatchObject({ sequence: 1, msgId: undefined, trace: undefined, headers: {} });
  });

  it('on an ephemeral consumer, names the generated consumer and no durable', async () => {
    const stream = streamName('HDL_CTXEPH');
    const captured: Array<{ consumer: string; durable: string | undefined }> = [];
    @Injectable()
    class Watcher {
      @OnEvent(`${stream}.x`)
      handle(_payload: unknown, ctx: EventContext): void {
        captured.push({ consumer: ctx.consumer, durable: ctx.durable });
      }
    }
    const app = await start(stream, [Watcher]);
    const consumer = consumerOf(app);
    await publisher(app).publish(`${stream}.x`, {});
    await waitFor(() => captured.length === 1, { timeoutMs: WAIT, message: 'Watcher.handle to receive' });
    expect(captured[0]).toEqual({ consumer, durable: undefined });
    expect((await hooks.client.jsm.consumers.info(stream, consumer)).config.durable_name).toBeUndefined();
  });
});

describe('subjects', () => {
  it('"*" matches exactly one token and ">" one or more', async () => {
    const stream = streamName('HDL_WILD');
    const star: string[] = [];
    const tail: string[] = [];
    @Injectable()
    class Wild {
      @OnEvent(`${stream}.*.created`)
      onStar(_payload: unknown, ctx: EventContext): void {
        star.push(ctx.subject.slice(stream.length + 1));
      }

      @OnEvent(`${stream}.>`)
      onTail(_payload: unknown, ctx: EventContext): void {
        tail.push(ctx.subject.slice(stream.length + 1));
      }
    }
    const app = await start(stream, [Wild]);
    const sent = ['a.created', 'a.b.created', 'a.updated', 'z', 'sentinel.created'];
    for (const s of sent) await publisher(app).publish(`${stream}.${s}`, { s });

    // Both consumers handle in stream order, so seeing the last message means the rest is done.
    await waitFor(() => star.includes('sentinel.created') && tail.includes('sentinel.created'), {
      timeoutMs: WAIT,
      message: 'both wildcard handlers to reach the sentinel',
    });
    expect(star).toEqual(['a.created', 'sentinel.created']);
    expect(tail).toEqual(sent);
  });

  it('stacked @OnEvent decorators give one method a consumer per subject', async () => {
    const stream = streamName('HDL_STACK');
    const got: string[] = [];
    @Injectable()
    class Stacked {
      @OnEvent(`${stream}.created`)
      @OnEvent(`${stream}.deleted`)
      handle(payload: { n: number }, ctx: EventContext): void {
        got.push(`${ctx.subject.slice(stream.length + 1)}:${payload.n}:${ctx.handler}`);
      }
    }
    const app = await start(stream, [Stacked]);
    const handlers = app.app.get(JetStreamLifecycle).handlers;
    expect(handlers.map((h) => [h.handlerId, h.subject]).sort()).toEqual([
      ['Stacked.handle', `${stream}.created`],
      ['Stacked.handle', `${stream}.deleted`],
    ]);
    expect(new Set(handlers.map((h) => h.consumer)).size).toBe(2);

    await publisher(app).publish(`${stream}.created`, { n: 1 });
    await publisher(app).publish(`${stream}.deleted`, { n: 2 });
    await publisher(app).publish(`${stream}.ignored`, { n: 3 });
    await waitFor(() => got.length === 2, { timeoutMs: WAIT, message: 'both stacked subjects to be handled' });
    expect(got.sort()).toEqual(['created:1:Stacked.handle', 'deleted:2:Stacked.handle']);
  });
});

describe('failures', () => {
  it('a handler that throws is retried after a delay and succeeds on the next delivery', async () => {
    const stream = streamName('HDL_RETRY');
    const subject = `${stream}.charge`;
    const deliveries: Array<{ seq: number; deliveryCount: number; redelivered: boolean; outcome: string }> = [];
    @Injectable()
    class Payments {
      @OnEvent(subject)
      handle(_payload: unknown, ctx: EventContext): void {
        const first = ctx.deliveryCount === 1;
        deliveries.push({ seq: ctx.sequence, deliveryCount: ctx.deliveryCount, redelivered: ctx.redelivered, outcome: first ? 'threw' : 'ok' });
        if (first) throw new Error('card processor unavailable');
      }
    }
    const app = await start(stream, [Payments]);
    const consumer = consumerOf(app);
    const ack = await publisher(app).publish(subject, { amount: 10 });

    await waitFor(() => deliveries.some((d) => d.outcome === 'ok'), { timeoutMs: WAIT, message: 'the retried delivery to succeed' });
    await waitSettled(stream, consumer, ack.seq);
    expect(deliveries).toEqual([
      { seq: ack.seq, deliveryCount: 1, redelivered: false, outcome: 'threw' },
      { seq: ack.seq, deliveryCount: 2, redelivered: true, outcome: 'ok' },
    ]);
    const failure = app.logger.lines.filter(
      (l) => l.message.includes('card processor unavailable') && l.message.includes(subject) && l.message.includes(`seq ${ack.seq}`),
    );
    expect(failure).toHaveLength(1);
    expect(['warn', 'error']).toContain(failure[0].level);
  });
});

describe('Nest pipeline around handlers', () => {
  it('runs guards and interceptors declared on the handler, in a "jetstream" execution context', async () => {
    const stream = streamName('HDL_PIPE');
    const subject = `${stream}.cmd`;
    const guardSaw: unknown[] = [];
    const interceptorSaw: Array<Record<string, unknown>> = [];
    const results: unknown[] = [];
    const handled: unknown[] = [];

    @Injectable()
    class AllowedOnly implements CanActivate {
      canActivate(context: ExecutionContext): boolean {
        const data = context.switchToRpc().getData<{ allowed: boolean }>();
        guardSaw.push(data);
        return data.allowed === true;
      }
    }
    @Injectable()
    class Spy implements NestInterceptor {
      intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
        interceptorSaw.push({
          type: context.getType(),
          isJetStream: isJetStreamContext(context),
          data: context.switchToRpc().getData(),
          ctxIsEventContext: context.switchToRpc().getContext() instanceof EventContext,
          className: context.getClass().name,
          handlerName: context.getHandler().name,
        });
        return next.handle().pipe(tap((result) => results.push(result)));
      }
    }
    @Injectable()
    class Commands {
      @OnEvent(subject)
      @UseGuards(AllowedOnly)
      @UseInterceptors(Spy)
      handle(payload: { allowed: boolean; n: number }): string {
        handled.push(payload);
        return `done ${payload.n}`;
      }
    }
    const app = await start(stream, [Commands]);
    await publisher(app).publish(subject, { allowed: false, n: 1 });
    await publisher(app).publish(subject, { allowed: true, n: 2 });
    await waitFor(() => results.length === 1, { timeoutMs: WAIT, message: 'the allowed command to pass through the interceptor' });

    expect(guardSaw[0]).toEqual({ allowed: false, n: 1 });
    expect(guardSaw).toContainEqual({ allowed: true, n: 2 });
    expect(handled).toEqual([{ allowed: true, n: 2 }]);
    expect(interceptorSaw).toEqual([
      {
        type: 'jetstream',
        isJetStream: true,
        data: { allowed: true, n: 2 },
        ctxIsEventContext: true,
        className: 'Commands',
        handlerName: 'handle',
      },
    ]);
    expect(results).toEqual(['done 2']);
  });
});
