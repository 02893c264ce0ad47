import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import type { CircuitBreakerState, ConsumeStatus, HandlerLabels } from './instrumentation.js';
import { loadPeer } from './load-peer.js';
import type { MetricsRegistry, ResolvedMetricsOptions } from '../options/observability-options.js';

// Type-only: erased from the emitted JavaScript, so nothing loads prom-client until metrics are on.
type PromClient = typeof import('prom-client');

/** The counters of one handler, label children bound once (prom-client's `labels()` hashes). */
export interface HandlerMetrics {
  /** Seconds from the message's stream timestamp to the handler call starting. */
  observeLatency(seconds: number): void;
  observeDuration(seconds: number): void;
  error(error: unknown): void;
  settled(status: ConsumeStatus, reason?: string): void;
  circuitBreaker(state: CircuitBreakerState, opened: boolean): void;
  /** A message a server-side schedule fired reached the handler (its first delivery). */
  scheduleFired(schedule: string): void;
}

/** The value of `nats_circuit_breaker_state`. */
const BREAKER_STATE_VALUE: Record<CircuitBreakerState, number> = { closed: 0, open: 1, 'half-open': 2 };

/**
 * The module's Prometheus metrics, named as operators of NATS consumers know them. Registered
 * in the user's registry or prom-client's default one; a metric already registered under the
 * same name (a second application in the process) is reused rather than clashing.
 */
export class JetStreamMetrics {
  private readonly consumed: Counter<'subject' | 'durable' | 'status'>;
  private readonly latency: Histogram<'subject'>;
  private readonly duration: Histogram<'subject' | 'durable'>;
  private readonly errors: Counter<'subject' | 'error_type'>;
  private readonly lag: Gauge<'stream' | 'durable'>;
  private readonly ackPending: Gauge<'stream' | 'durable'>;
  private readonly published: Counter<'subject' | 'status'>;
  private readonly deadLetters: Counter<'subject' | 'durable' | 'reason'>;
  private readonly outboxParked: Counter<'subject' | 'reason'>;
  private readonly breakerState: Gauge<'subject' | 'durable'>;
  private readonly breakerOpened: Counter<'subject' | 'durable'>;
  private readonly scheduleFires: Counter<'schedule' | 'subject' | 'durable'>;

  private constructor(
    prom: PromClient,
    private readonly options: ResolvedMetricsOptions,
  ) {
    const registry = chooseRegistry(options, prom) as Registry;
    const p = options.prefix;
    const ensure = <M>(name: string, type: abstract new (...args: never[]) => M, create: () => M): M => {
      const existing = registry.getSingleMetric(name);
      if (existing === undefined) return create();
      if (existing instanceof type) return existing;
      throw new InvalidOptionsError(`metrics: "${name}" is already registered in the registry as another metric type; use a prefix or another registry`);
    };
    const registers = [registry];
    this.consumed = ensure(`${p}nats_consume_total`, prom.Counter, () => new prom.Counter({
      name: `${p}nats_consume_total`,
      help: 'Deliveries handled, by handler subject, durable and how they were settled',
      labelNames: ['subject', 'durable', 'status'],
      registers,
    }));
    this.latency = ensure(`${p}nats_consume_latency_seconds`, prom.Histogram, () => new prom.Histogram({
      name: `${p}nats_consume_latency_seconds`,
      help: 'Time from the message being stored in its stream to its handler call starting',
      labelNames: ['subject'],
      buckets: [...options.latencyBuckets],
      registers,
    }));
    this.duration = ensure(`${p}nats_handler_duration_seconds`, prom.Histogram, () => new prom.Histogram({
      name: `${p}nats_handler_duration_seconds`,
      help: 'Duration of handler calls, including the Nest pipeline around them',
      labelNames: ['subject', 'durable'],
      buckets: [...options.durationBuckets],
      registers,
    }));
    this.errors = ensure(`${p}nats_consume_errors_total`, prom.Counter, () => new prom.Counter({
      name: `${p}nats_consume_errors_total`,
      help: 'Failed handler calls, by handler subject and error class',
      labelNames: ['subject', 'error_type'],
      registers,
    }));
    this.lag = ensure(`${p}nats_consumer_lag`, prom.Gauge, () => new prom.Gauge({
      name: `${p}nats_consumer_lag`,
      help: 'Messages not yet delivered to the consumer (num_pending), sampled',
      labelNames: ['stream', 'durable'],
      registers,
    }));
    this.ackPending = ensure(`${p}nats_consumer_ack_pending`, prom.Gauge, () => new prom.Gauge({
      name: `${p}nats_consumer_ack_pending`,
      help: 'Messages delivered and not yet acknowledged (num_ack_pending), sampled',
      labelNames: ['stream', 'durable'],
      registers,
    }));
    this.published = ensure(`${p}nats_publish_total`, prom.Counter, () => new prom.Counter({
      name: `${p}nats_publish_total`,
      help: 'Publishes to JetStream, by subject and result (success, duplicate, error)',
      labelNames: ['subject', 'status'],
      registers,
    }));
    this.deadLetters = ensure(`${p}nats_dead_letters_total`, prom.Counter, () => new prom.Counter({
      name: `${p}nats_dead_letters_total`,
      help: 'Messages parked in a dead-letter stream, by handler subject, durable and reason',
      labelNames: ['subject', 'durable', 'reason'],
      registers,
    }));
    this.outboxParked = ensure(`${p}nats_outbox_parked_total`, prom.Counter, () => new prom.Counter({
      name: `${p}nats_outbox_parked_total`,
      help: 'Outbox events that can never be published and were parked, by subject and reason (no_stream, too_large, permission_denied)',
      labelNames: ['subject', 'reason'],
      registers,
    }));
    this.breakerState = ensure(`${p}nats_circuit_breaker_state`, prom.Gauge, () => new prom.Gauge({
      name: `${p}nats_circuit_breaker_state`,
      help: 'State of a handler\'s circuit breaker in this instance: 0 closed, 1 open (consumer paused), 2 half-open (one trial running)',
      labelNames: ['subject', 'durable'],
      registers,
    }));
    this.breakerOpened = ensure(`${p}nats_circuit_breaker_opened_total`, prom.Counter, () => new prom.Counter({
      name: `${p}nats_circuit_breaker_opened_total`,
      help: 'Times a handler\'s circuit breaker opened (paused its consumer) in this instance',
      labelNames: ['subject', 'durable'],
      registers,
    }));
    this.scheduleFires = ensure(`${p}nats_schedule_fires_total`, prom.Counter, () => new prom.Counter({
      name: `${p}nats_schedule_fires_total`,
      help: 'Messages fired by a server-side schedule (Nats-Scheduler header) that reached a handler, first deliveries only, by schedule name, handler subject and durable',
      labelNames: ['schedule', 'subject', 'durable'],
      registers,
    }));
  }

  static async load(options: ResolvedMetricsOptions): Promise<JetStreamMetrics> {
    return new JetStreamMetrics(await loadPromClient(), options);
  }

  /**
   * The registry the metrics of these options are recorded in: what a `/metrics` endpoint must
   * serve. prom-client is loaded only when no registry was given (its default `register`).
   */
  static async registryOf(options: ResolvedMetricsOptions): Promise<MetricsRegistry> {
    return options.registry ?? chooseRegistry(options, await loadPromClient());
  }

  get lagIntervalMs(): number {
    return this.options.lagIntervalMs;
  }

  forHandler(labels: HandlerLabels): HandlerMetrics {
    const { subject, consumer: durable } = labels;
    const latency = this.latency.labels({ subject });
    const duration = this.duration.labels({ subject, durable });
    const statuses = new Map<ConsumeStatus, { inc(): void }>();
    const errorTypes = new Map<string, { inc(): void }>();
    return {
      observeLatency: (seconds) => latency.observe(seconds),
      observeDuration: (seconds) => duration.observe(seconds),
      error: (error) => {
        const type = errorType(error);
        let child = errorTypes.get(type);
        if (!child) errorTypes.set(type, (child = this.errors.labels({ subject, error_type: type })));
        child.inc();
      },
      settled: (status, reason) => {
        let child = statuses.get(status);
        if (!child) statuses.set(status, (child = this.consumed.labels({ subject, durable, status })));
        child.inc();
        if (status === 'dead_letter') this.deadLetters.inc({ subject, durable, reason: reason ?? 'unknown' });
      },
      scheduleFired: (schedule) => this.scheduleFires.inc({ schedule, subject, durable }),
      circuitBreaker: (state, opened) => {
        this.breakerState.set({ subject, durable }, BREAKER_STATE_VALUE[state]);
        if (opened) this.breakerOpened.inc({ subject, durable });
      },
    };
  }

  recordPublish(subject: string, status: 'success' | 'duplicate' | 'error'): void {
    const label = this.options.publishSubjectLabel ? this.options.publishSubjectLabel(subject) : subject;
    this.published.inc({ subject: label, status });
  }

  recordOutboxParked(subject: string, reason: string): void {
    const label = this.options.publishSubjectLabel ? this.options.publishSubjectLabel(subject) : subject;
    this.outboxParked.inc({ subject: label, reason });
  }

  setLag(stream: string, durable: string, pending: number, ackPending: number): void {
    this.lag.set({ stream, durable }, pending);
    this.ackPending.set({ stream, durable }, ackPending);
  }

  /** Drops a consumer's lag series once it is no longer sampled (stopped, ephemeral gone). */
  clearLag(stream: string, durable: string): void {
    this.lag.remove({ stream, durable });
    this.ackPending.remove({ stream, durable });
  }
}

function loadPromClient(): Promise<PromClient> {
  return loadPeer<PromClient>('prom-client', 'metrics', 'Counter');
}

function chooseRegistry(options: ResolvedMetricsOptions, prom: PromClient): MetricsRegistry {
  return options.registry ?? prom.register;
}

function errorType(error: unknown): string {
  if (error instanceof Error) return error.name && error.name !== 'Error' ? error.name : error.constructor?.name || 'Error';
  return error === null ? 'null' : typeof error;
}
