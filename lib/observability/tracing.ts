import type { Attributes, Context, Link, Span, TextMapGetter, TextMapSetter, Tracer } from '@opentelemetry/api';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import type { EventContext } from '../context/event-context.js';
import type { HandlerLabels, PublishOutcome } from './instrumentation.js';
import { loadPeer } from './load-peer.js';
import type { ResolvedTracingOptions } from '../options/observability-options.js';

// Type-only: erased from the emitted JavaScript, so nothing loads the API until tracing is on.
type OtelApi = typeof import('@opentelemetry/api');

/** A span with what ends it; the context is where the handler call runs. */
export interface TracedCall {
  readonly context: unknown;
  end(): void;
  fail(error: unknown): void;
}

export interface TracedPublish {
  readonly headers: MsgHdrs;
  end(outcome: PublishOutcome | undefined, error?: unknown): void;
}

// MsgHdrs.get returns '' for a missing key; the propagators want undefined.
const getter: TextMapGetter<MsgHdrs | undefined> = {
  keys: (carrier) => (carrier ? carrier.keys() : []),
  get: (carrier, key) => {
    const value = carrier?.get(key);
    return value === '' || value === undefined ? undefined : value;
  },
};

// set, not append: a dead-letter copy carries the original's traceparent, the new one replaces it.
const setter: TextMapSetter<MsgHdrs> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

/**
 * OpenTelemetry through the global API: a PRODUCER span per publish whose context goes out as
 * W3C `traceparent`/`tracestate` headers (or whatever propagator the application registered),
 * and a CONSUMER span per handler call, child of the publish, active while the handler runs.
 * Without an SDK registered, the API hands out no-op spans and this costs next to nothing.
 */
export class JetStreamTracing {
  private readonly tracer: Tracer;

  private constructor(private readonly api: OtelApi, options: ResolvedTracingOptions) {
    this.tracer = api.trace.getTracer(options.tracerName);
  }

  static async load(options: ResolvedTracingOptions): Promise<JetStreamTracing> {
    const api = await loadPeer<OtelApi>('@opentelemetry/api', 'tracing', 'trace');
    return new JetStreamTracing(api, options);
  }

  publish(subject: string, msgId: string, headers: MsgHdrs | undefined): TracedPublish {
    const { api } = this;
    let parent = api.context.active();
    // No span active but a trace context in the headers (a dead-letter copy settled outside the
    // handler's span, or a caller passing traceparent itself): continue that trace.
    if (headers && !api.trace.getSpan(parent)) parent = api.propagation.extract(parent, headers, getter);
    const span = this.tracer.startSpan(`publish ${subject}`, {
      kind: api.SpanKind.PRODUCER,
      attributes: {
        'messaging.system': 'nats',
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'publish',
        'messaging.destination.name': subject,
        'messaging.message.id': msgId,
      },
    }, parent);
    const out = headers ?? natsHeaders();
    api.propagation.inject(api.trace.setSpan(parent, span), out, setter);
    return {
      headers: out,
      end: (outcome, error) => {
        if (outcome) {
          span.setAttribute('messaging.nats.stream', outcome.stream);
          span.setAttribute('messaging.nats.stream_sequence', outcome.seq);
          if (outcome.duplicate) span.setAttribute('messaging.nats.duplicate', true);
        }
        this.finish(span, outcome === undefined, error);
      },
    };
  }

  handling(ctx: EventContext, labels: HandlerLabels): TracedCall {
    const { api } = this;
    const parent: Context = api.propagation.extract(api.ROOT_CONTEXT, ctx.message.headers, getter);
    const attributes: Attributes = {
      'messaging.system': 'nats',
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.name': ctx.subject,
      'messaging.destination.template': labels.subject,
      'messaging.consumer.group.name': labels.consumer,
      'messaging.nats.stream': labels.stream,
      'messaging.nats.stream_sequence': ctx.sequence,
      'messaging.nats.delivery_count': ctx.deliveryCount,
    };
    const msgId = ctx.msgId;
    if (msgId) attributes['messaging.message.id'] = msgId;
    const span = this.tracer.startSpan(`process ${labels.subject}`, { kind: api.SpanKind.CONSUMER, attributes }, parent);
    return {
      context: api.trace.setSpan(parent, span),
      end: () => span.end(),
      fail: (error) => this.finish(span, true, error),
    };
  }

  /**
   * One CONSUMER span for a batch handler call: a new trace, linked to each message's publish
   * (the OpenTelemetry messaging conventions for batch processing), since one span cannot have
   * a hundred parents.
   */
  handlingBatch(ctxs: readonly EventContext[], labels: HandlerLabels): TracedCall {
    const { api } = this;
    const links: Link[] = [];
    for (const ctx of ctxs) {
      const remote = api.trace.getSpanContext(api.propagation.extract(api.ROOT_CONTEXT, ctx.message.headers, getter));
      if (remote && api.trace.isSpanContextValid(remote)) links.push({ context: remote, attributes: { 'messaging.nats.stream_sequence': ctx.sequence } });
    }
    const attributes: Attributes = {
      'messaging.system': 'nats',
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.template': labels.subject,
      'messaging.consumer.group.name': labels.consumer,
      'messaging.nats.stream': labels.stream,
      'messaging.batch.message_count': ctxs.length,
    };
    const parent = api.ROOT_CONTEXT;
    const span = this.tracer.startSpan(`process ${labels.subject}`, { kind: api.SpanKind.CONSUMER, attributes, links }, parent);
    return {
      context: api.trace.setSpan(parent, span),
      end: () => span.end(),
      fail: (error) => this.finish(span, true, error),
    };
  }

  /** Runs `call` with the context of a `handling` span active (AsyncLocalStorage when registered). */
  run<T>(context: unknown, call: () => Promise<T>): Promise<T> {
    return this.api.context.with(context as Context, call);
  }

  private finish(span: Span, failed: boolean, error: unknown): void {
    if (failed) {
      if (error instanceof Error) span.recordException(error);
      else span.recordException(String(error));
      span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    }
    span.end();
  }
}
