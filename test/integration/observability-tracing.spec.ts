import 'reflect-metadata';
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
// A dependency of sdk-trace-base; registered by hand because BasicTracerProvider 2.x no longer does.
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Controller, Injectable, Module, UseInterceptors, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { Registry, register as defaultRegistry } from 'prom-client';
import { lastValueFrom, type Observable } from 'rxjs';
import { OnEvent, TerminalError } from '../../lib/index.js';
import { JetStreamClient, JetStreamContext, JetStreamServer } from '../../lib/transport/index.js';
import { deferred, testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { createStream, handlerClass, sharedServerHooks } from './kit.js';
import { hasFeature, refusal } from './server-features-kit.js';

/**
 * Tracing against a real server: the trace context travels in the message's headers from the
 * publish span to the handler's span, which is active while the handler runs.
 */

const hooks = sharedServerHooks();
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = trace.getTracer('observability-tracing.spec');

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
});
afterAll(async () => {
  await provider.shutdown();
  trace.disable();
  propagation.disable();
  context.disable();
});
afterEach(() => {
  exporter.reset();
});

function finished(name: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.name === name);
}

async function oneFinished(name: string): Promise<ReadableSpan> {
  await waitFor(() => finished(name).length >= 1, { timeoutMs: 10_000, message: `span "${name}" ended` });
  expect(finished(name)).toHaveLength(1);
  return finished(name)[0];
}

interface Seen {
  traceparent?: string;
  activeTraceId?: string;
  activeSpanId?: string;
}

describe('tracing', () => {
  it('continues the publisher\'s trace in the handler: publish span, traceparent, process span, user spans nested', async () => {
    const stream = uniqueName('TRC');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const subject = `${stream}.orders.created`;
    const seen: Seen = {};
    const done = deferred();
    const Handler = handlerClass('TracedHandler', `${stream}.orders.*`, { durable: 'traced' }, (_payload, ctx) => {
      seen.traceparent = ctx.header('traceparent');
      const active = trace.getActiveSpan()?.spanContext();
      seen.activeTraceId = active?.traceId;
      seen.activeSpanId = active?.spanId;
      tracer.startActiveSpan('inside handler', (span) => span.end());
      done.resolve();
    });
    const app = await hooks.apps.start({ servers: testNatsUrl(), tracing: true }, [Handler]);

    const ack = await tracer.startActiveSpan('checkout', async (span) => {
      try {
        return await app.publisher.publish(subject, { id: 'o-1' }, { msgId: 'order-o-1' });
      } finally {
        span.end();
      }
    });
    await done.promise;

    const checkout = await oneFinished('checkout');
    const publish = await oneFinished(`publish ${subject}`);
    const process = await oneFinished(`process ${stream}.orders.*`);
    const inside = await oneFinished('inside handler');
    const traceId = checkout.spanContext().traceId;

    expect(publish.kind).toBe(SpanKind.PRODUCER);
    expect(publish.spanContext().traceId).toBe(traceId);
    expect(publish.parentSpanContext?.spanId).toBe(checkout.spanContext().spanId);
    expect(publish.attributes).toMatchObject({
      'messaging.system': 'nats',
      'messaging.destination.name': subject,
      'messaging.message.id': 'order-o-1',
      'messaging.nats.stream': stream,
      'messaging.nats.stream_sequence': ack.seq,
    });
    expect(publish.status.code).not.toBe(SpanStatusCode.ERROR);

    // The W3C header names the publish span as the parent of whatever handles the message.
    expect(seen.traceparent).toBe(`00-${traceId}-${publish.spanContext().spanId}-01`);

    expect(process.kind).toBe(SpanKind.CONSUMER);
    expect(process.spanContext().traceId).toBe(traceId);
    expect(process.parentSpanContext?.spanId).toBe(publish.spanContext().spanId);
    expect(process.attributes).toMatchObject({
      'messaging.system': 'nats',
      'messaging.operation.type': 'process',
      'messaging.destination.name': subject,
      'messaging.destination.template': `${stream}.orders.*`,
      'messaging.consumer.group.name': 'traced',
      'messaging.message.id': 'order-o-1',
      'messaging.nats.stream': stream,
      'messaging.nats.stream_sequence': ack.seq,
      'messaging.nats.delivery_count': 1,
    });

    // Inside the handler the process span is active, so the user's spans are its children.
    expect(seen.activeTraceId).toBe(traceId);
    expect(seen.activeSpanId).toBe(process.spanContext().spanId);
    expect(inside.parentSpanContext?.spanId).toBe(process.spanContext().spanId);
    expect(inside.spanContext().traceId).toBe(traceId);
  });

  it('keeps the process span active through the Nest pipeline (interceptors) into the handler', async () => {
    const stream = uniqueName('TRCI');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const inInterceptor: Array<string | undefined> = [];
    const inHandler: Array<string | undefined> = [];
    const done = deferred();
    @Injectable()
    class SpanPeekInterceptor implements NestInterceptor {
      intercept(_ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
        inInterceptor.push(trace.getActiveSpan()?.spanContext().spanId);
        return next.handle();
      }
    }
    @UseInterceptors(SpanPeekInterceptor)
    class Intercepted {
      @OnEvent(`${stream}.x`, { durable: 'intercepted' })
      async handle(): Promise<void> {
        await Promise.resolve();
        inHandler.push(trace.getActiveSpan()?.spanContext().spanId);
        done.resolve();
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl(), tracing: true }, [Intercepted]);
    await app.publisher.publish(`${stream}.x`, { n: 1 });
    await done.promise;
    const span = await oneFinished(`process ${stream}.x`);
    expect(inInterceptor).toEqual([span.spanContext().spanId]);
    expect(inHandler).toEqual([span.spanContext().spanId]);
  });

  it('records a failing handler on its span; a message without trace headers starts a new trace', async () => {
    const stream = uniqueName('TRCF');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const called = deferred();
    const Handler = handlerClass('FailingTracedHandler', `${stream}.x`, { durable: 'failing', dlq: false }, () => {
      called.resolve();
      throw new TerminalError('card declined');
    });
    await hooks.apps.start({ servers: testNatsUrl(), tracing: true }, [Handler]);
    // Published by a plain client: no traceparent header.
    await hooks.client.js.publish(`${stream}.x`, JSON.stringify({ id: 1 }));
    await called.promise;

    const span = await oneFinished(`process ${stream}.x`);
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.status.message).toBe('card declined');
    const exception = span.events.find((e) => e.name === 'exception');
    expect(exception?.attributes?.['exception.message']).toBe('card declined');
  });

  it('keeps a dead-letter copy in the trace of the message it parks', async () => {
    const stream = uniqueName('TRCD');
    const dlqStream = uniqueName('TRDL');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const dlqSubject = `${dlqStream}.letters`;
    const Handler = handlerClass('DeadLetteringHandler', `${stream}.x`, { durable: 'dl', dlq: { stream: dlqStream, subject: dlqSubject } }, () => {
      throw new TerminalError('unprocessable');
    });
    const app = await hooks.apps.start({ servers: testNatsUrl(), tracing: true }, [Handler]);
    try {
      await tracer.startActiveSpan('checkout', async (span) => {
        await app.publisher.publish(`${stream}.x`, { id: 1 });
        span.end();
      });
      const copy = await oneFinished(`publish ${dlqSubject}`);
      const original = await oneFinished(`publish ${stream}.x`);
      const process = await oneFinished(`process ${stream}.x`);
      expect(copy.spanContext().traceId).toBe(original.spanContext().traceId);
      expect([process.spanContext().spanId, original.spanContext().spanId]).toContain(copy.parentSpanContext?.spanId);
      const stored = await hooks.client.jsm.streams.getMessage(dlqStream, { last_by_subj: dlqSubject });
      expect(stored?.header.get('traceparent')).toBe(`00-${copy.spanContext().traceId}-${copy.spanContext().spanId}-01`);
    } finally {
      await app.close();
      await hooks.client.jsm.streams.delete(dlqStream).catch(() => undefined);
    }
  });

  it('marks a failed publish span as an error', async () => {
    const stream = uniqueName('TRCP');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const app = await hooks.apps.start({ servers: testNatsUrl(), tracing: true });
    await expect(app.publisher.publish(`${stream}.x`, { n: 1 }, { expect: { lastSequence: 42 } })).rejects.toThrow();
    const span = await oneFinished(`publish ${stream}.x`);
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.events.some((e) => e.name === 'exception')).toBe(true);
  });

  it('traces and counts each item of an atomic batch: one publish span per item, its context in the item\'s headers; a refused batch marks every item an error', async () => {
    const stream = uniqueName('TRCA');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`], hasFeature(hooks.client, 'atomicBatch') ? { allow_atomic: true } : {});
    const plain = uniqueName('TRCAP');
    await createStream(hooks.client.jsm, plain, [`${plain}.>`]);
    const registry = new Registry();
    const app = await hooks.apps.start({ servers: testNatsUrl(), tracing: true, metrics: { registry } });
    const items = [0, 1, 2].map((i) => ({ subject: `${stream}.x`, payload: { i } }));
    if (!hasFeature(hooks.client, 'atomicBatch')) {
      await expect(app.publisher.publishBatch(items, { atomic: true })).rejects.toThrow(refusal(hooks.client, 'atomicBatch'));
      // Refused before anything was sent: no span, no count.
      expect(finished(`publish ${stream}.x`)).toEqual([]);
      expect(await counter(registry, 'nats_publish_total', { subject: `${stream}.x` })).toBe(0);
      return;
    }
    await tracer.startActiveSpan('caller', async (span) => {
      await app.publisher.publishBatch(items, { atomic: true });
      span.end();
    });
    const spans = finished(`publish ${stream}.x`);
    expect(spans).toHaveLength(3);
    expect(spans.map((s) => s.kind)).toEqual([SpanKind.PRODUCER, SpanKind.PRODUCER, SpanKind.PRODUCER]);
    expect(spans.map((s) => s.attributes['messaging.nats.stream_sequence']).sort()).toEqual([1, 2, 3]);
    const caller = finished('caller')[0];
    expect(spans.every((s) => s.spanContext().traceId === caller.spanContext().traceId)).toBe(true);
    // The stored message carries its own span's context.
    const stored = (await hooks.client.jsm.streams.getMessage(stream, { seq: 2 }))!;
    const second = spans.find((s) => s.attributes['messaging.nats.stream_sequence'] === 2)!;
    expect(stored.header.get('traceparent')).toContain(second.spanContext().spanId);
    expect(await counter(registry, 'nats_publish_total', { subject: `${stream}.x`, status: 'success' })).toBe(3);

    exporter.reset();
    await expect(app.publisher.publishBatch([0, 1].map((i) => ({ subject: `${plain}.x`, payload: { i } })), { atomic: true })).rejects.toThrow(/allow_atomic/);
    const refused = finished(`publish ${plain}.x`);
    expect(refused).toHaveLength(2);
    expect(refused.every((s) => s.status.code === SpanStatusCode.ERROR)).toBe(true);
    expect(await counter(registry, 'nats_publish_total', { subject: `${plain}.x`, status: 'error' })).toBe(2);
  });

  it('with tracing off, creates no spans and sends no traceparent, even with an SDK registered', async () => {
    const stream = uniqueName('TRCOFF');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const seen: Seen = {};
    const done = deferred();
    const Handler = handlerClass('UntracedHandler', `${stream}.x`, { durable: 'untraced' }, (_payload, ctx) => {
      seen.traceparent = ctx.header('traceparent');
      done.resolve();
    });
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    await tracer.startActiveSpan('caller', async (span) => {
      await app.publisher.publish(`${stream}.x`, { n: 1 });
      span.end();
    });
    await done.promise;
    await app.close();
    expect(seen.traceparent).toBeUndefined();
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(['caller']);
  });
});

/** A counter's value for the given labels in a registry, 0 when never incremented. */
async function counter(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  const match = values.find((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want));
  return match?.value ?? 0;
}

describe('the microservices transport', () => {
  it('traces and counts JetStreamClient.emit through to an @EventPattern handler on JetStreamServer', async () => {
    const stream = uniqueName('TRMS');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const subject = `${stream}.orders.created`;
    const filter = `${stream}.orders.*`;
    const registry = new Registry();
    const seen: Seen = {};
    const done = deferred();
    @Controller()
    class TransportEvents {
      @EventPattern<string>(filter, { durable: 'ms-traced' })
      created(@Payload() _data: unknown, @Ctx() ctx: JetStreamContext): void {
        seen.traceparent = ctx.header('traceparent');
        const active = trace.getActiveSpan()?.spanContext();
        seen.activeTraceId = active?.traceId;
        seen.activeSpanId = active?.spanId;
        done.resolve();
      }
    }
    @Module({ controllers: [TransportEvents] })
    class TransportModule {}

    const server = await NestFactory.createMicroservice(TransportModule, {
      strategy: new JetStreamServer({ servers: testNatsUrl(), tracing: true, metrics: { registry } }),
      logger: false,
    });
    const emitter = new JetStreamClient({ servers: testNatsUrl(), tracing: true, metrics: { registry } });
    try {
      await server.listen();
      const ack = await tracer.startActiveSpan('checkout', async (span) => {
        try {
          return await lastValueFrom(emitter.emit<{ seq: number }>(subject, { id: 'o-1' }));
        } finally {
          span.end();
        }
      });
      await done.promise;

      const checkout = await oneFinished('checkout');
      const publish = await oneFinished(`publish ${subject}`);
      const process = await oneFinished(`process ${filter}`);
      const traceId = checkout.spanContext().traceId;
      expect(publish.kind).toBe(SpanKind.PRODUCER);
      expect(publish.spanContext().traceId).toBe(traceId);
      expect(publish.parentSpanContext?.spanId).toBe(checkout.spanContext().spanId);
      expect(publish.attributes).toMatchObject({ 'messaging.nats.stream': stream, 'messaging.nats.stream_sequence': ack.seq });
      expect(seen.traceparent).toBe(`00-${traceId}-${publish.spanContext().spanId}-01`);
      expect(process.kind).toBe(SpanKind.CONSUMER);
      expect(process.spanContext().traceId).toBe(traceId);
      expect(process.parentSpanContext?.spanId).toBe(publish.spanContext().spanId);
      expect(seen.activeTraceId).toBe(traceId);
      expect(seen.activeSpanId).toBe(process.spanContext().spanId);

      expect(await counter(registry, 'nats_publish_total', { subject, status: 'success' })).toBe(1);
      // Counted once settled, which follows the handler's return.
      await waitFor(async () => (await counter(registry, 'nats_consume_total', { subject: filter, durable: 'ms-traced', status: 'success' })) === 1, {
        timeoutMs: 10_000,
        message: 'nats_consume_total counted the delivery',
      });
    } finally {
      await emitter.close();
      await server.close();
    }
  });

  it('leaves JetStreamClient.emit untraced and uncounted with both off; rejects bad options up front', async () => {
    expect(() => new JetStreamClient({ servers: testNatsUrl(), tracing: 'on' as never })).toThrow(/tracing must be true, false or an options object/);
    expect(() => new JetStreamClient({ servers: testNatsUrl(), metrics: { prefix: 'bad prefix' } })).toThrow(/metrics.prefix must be a valid Prometheus name prefix/);
    const stream = uniqueName('TRMSOFF');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const emitter = new JetStreamClient({ servers: testNatsUrl() });
    try {
      await tracer.startActiveSpan('caller', async (span) => {
        await lastValueFrom(emitter.emit(`${stream}.x`, { n: 1 }));
        span.end();
      });
      const stored = await hooks.client.jsm.streams.getMessage(stream, { last_by_subj: `${stream}.x` });
      expect(stored?.header?.get('traceparent') ?? '').toBe('');
      expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(['caller']);
      expect((await defaultRegistry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.includes('nats_'))).toEqual([]);
    } finally {
      await emitter.close();
    }
  });
});

describe('tracing of batch handlers', () => {
  it('makes one process span per batch call, linked to each message\'s publish span', async () => {
    const stream = uniqueName('TRB');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const subject = `${stream}.q`;
    let activeInCall: string | undefined;
    const done = deferred();
    @Injectable()
    class TracedBatch {
      @OnEvent(subject, { durable: 'tbatch', batch: { maxMessages: 3, maxWaitMs: 5_000 } })
      async handle(payloads: unknown[]) {
        activeInCall = trace.getActiveSpan()?.spanContext().spanId;
        if (payloads.length === 3) done.resolve();
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl(), tracing: true }, [TracedBatch]);
    for (let i = 0; i < 3; i++) await app.publisher.publish(subject, { i });
    await done.promise;
    const span = await oneFinished(`process ${subject}`);
    const publishes = finished(`publish ${subject}`);
    expect(publishes).toHaveLength(3);
    expect(span.kind).toBe(SpanKind.CONSUMER);
    expect(span.attributes['messaging.batch.message_count']).toBe(3);
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.links.map((l) => l.context.spanId).sort()).toEqual(publishes.map((p) => p.spanContext().spanId).sort());
    expect(activeInCall).toBe(span.spanContext().spanId);
  });
});
