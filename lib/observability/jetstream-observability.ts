import type { Logger } from '@nestjs/common';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/transport-node';
import type { EventContext } from '../context/event-context.js';
import { ConsumerLagSampler, type LagTarget } from './consumer-lag-sampler.js';
import type {
  CircuitBreakerState,
  ConsumeStatus,
  HandlerInstrumentation,
  HandlerLabels,
  HandlingScope,
  PublishInstrumentation,
  PublishOutcome,
  PublishScope,
} from './instrumentation.js';
import { JetStreamMetrics, type HandlerMetrics } from './metrics.js';
import { ScheduleHeaders, scheduleNameOf } from '../wire/schedule-headers.js';
import { JetStreamTracing, type TracedCall } from './tracing.js';
import type { ResolvedMetricsOptions, ResolvedTracingOptions } from '../options/observability-options.js';

export interface ObservabilitySettings {
  readonly metrics: ResolvedMetricsOptions | false;
  readonly tracing: ResolvedTracingOptions | false;
}

/**
 * Metrics and tracing as the module options ask for them. The optional peers are loaded here,
 * at startup, only when their feature is on; with both off every hook is undefined and the
 * engine and publisher skip them with one check.
 */
export class JetStreamObservability {
  /** Hooks of the publisher; undefined when nothing is observed. */
  readonly publishing: PublishInstrumentation | undefined;

  private constructor(
    private readonly metrics: JetStreamMetrics | undefined,
    private readonly tracing: JetStreamTracing | undefined,
  ) {
    this.publishing = metrics || tracing ? new ObservedPublishing(metrics, tracing) : undefined;
  }

  /** Throws a clear error when a feature is on and its peer dependency is not installed. */
  static async create(settings: ObservabilitySettings): Promise<JetStreamObservability> {
    const metrics = settings.metrics ? await JetStreamMetrics.load(settings.metrics) : undefined;
    const tracing = settings.tracing ? await JetStreamTracing.load(settings.tracing) : undefined;
    return new JetStreamObservability(metrics, tracing);
  }

  /** Nothing on: what the publisher and engine get when built outside the module. */
  static readonly off = new JetStreamObservability(undefined, undefined);

  forHandler(labels: HandlerLabels): HandlerInstrumentation | undefined {
    if (!this.metrics && !this.tracing) return undefined;
    return new ObservedHandler(labels, this.metrics?.forHandler(labels), this.tracing);
  }

  /** Counts an outbox event parked because it can never be published; no-op with metrics off. */
  outboxParked(subject: string, reason: string): void {
    this.metrics?.recordOutboxParked(subject, reason);
  }

  /** Lag gauges of the given consumers, read on a timer; undefined when metrics are off. */
  sampleLag(jsm: JetStreamManager, targets: () => readonly LagTarget[], logger: Logger): ConsumerLagSampler | undefined {
    const metrics = this.metrics;
    if (!metrics) return undefined;
    const sampler = new ConsumerLagSampler(
      jsm,
      targets,
      (s) => metrics.setLag(s.stream, s.consumer, s.pending, s.ackPending),
      (t) => metrics.clearLag(t.stream, t.consumer),
      metrics.lagIntervalMs,
      logger,
    );
    sampler.start();
    return sampler;
  }
}

class ObservedHandler implements HandlerInstrumentation {
  constructor(
    readonly labels: HandlerLabels,
    readonly metrics: HandlerMetrics | undefined,
    readonly tracing: JetStreamTracing | undefined,
  ) {}

  begin(ctx: EventContext): HandlingScope {
    return new ObservedCall(this, ctx);
  }

  beginBatch(ctxs: readonly EventContext[]): HandlingScope {
    return new ObservedCall(this, ctxs);
  }

  settled(status: ConsumeStatus, reason?: string): void {
    this.metrics?.settled(status, reason);
  }

  circuitBreaker(state: CircuitBreakerState, opened: boolean): void {
    this.metrics?.circuitBreaker(state, opened);
  }
}

class ObservedCall implements HandlingScope {
  private readonly started = performance.now();
  private readonly traced: TracedCall | undefined;

  /** `ctx`: one message's call; a list: one batch handler call (one duration, one span). */
  constructor(
    private readonly handler: ObservedHandler,
    ctx: EventContext | readonly EventContext[],
  ) {
    const metrics = handler.metrics;
    if (metrics) {
      // Server and client clocks differ: a negative wait is skew, not time travel.
      const now = Date.now();
      for (const one of Array.isArray(ctx) ? ctx : [ctx]) {
        metrics.observeLatency(Math.max(0, now - one.message.info.timestampNanos / 1_000_000) / 1_000);
        // A fire is counted once, on its first delivery: retries are not more fires.
        if (one.message.headers && one.deliveryCount === 1) {
          const scheduler = one.header(ScheduleHeaders.Scheduler);
          if (scheduler) metrics.scheduleFired(scheduleNameOf(scheduler));
        }
      }
    }
    this.traced = Array.isArray(ctx) ? handler.tracing?.handlingBatch(ctx, handler.labels) : handler.tracing?.handling(ctx as EventContext, handler.labels);
  }

  run<T>(call: () => Promise<T>): Promise<T> {
    return this.traced ? this.handler.tracing!.run(this.traced.context, call) : call();
  }

  end(): void {
    this.handler.metrics?.observeDuration((performance.now() - this.started) / 1_000);
    this.traced?.end();
  }

  fail(error: unknown): void {
    const metrics = this.handler.metrics;
    if (metrics) {
      metrics.observeDuration((performance.now() - this.started) / 1_000);
      metrics.error(error);
    }
    this.traced?.fail(error);
  }
}

class ObservedPublishing implements PublishInstrumentation {
  constructor(
    private readonly metrics: JetStreamMetrics | undefined,
    private readonly tracing: JetStreamTracing | undefined,
  ) {}

  begin(subject: string, msgId: string, headers: MsgHdrs | undefined): PublishScope {
    const traced = this.tracing?.publish(subject, msgId, headers);
    const metrics = this.metrics;
    return {
      headers: traced ? traced.headers : headers,
      end: (outcome: PublishOutcome | undefined, error?: unknown) => {
        metrics?.recordPublish(subject, outcome ? (outcome.duplicate ? 'duplicate' : 'success') : 'error');
        traced?.end(outcome, error);
      },
    };
  }
}
