import { InvalidOptionsError } from '../errors/jetstream-errors.js';

/**
 * What the module needs of a prom-client `Registry`: any `new Registry()` (or the default
 * `register`) fits. Structural, so the public types do not require prom-client to be installed.
 */
export interface MetricsRegistry {
  getSingleMetric(name: string): unknown;
  metrics(): Promise<string>;
  /** The exposition format's content type (prom-client sets it: text or OpenMetrics). */
  readonly contentType?: string;
}

export interface ResolvedMetricsOptions {
  readonly registry: MetricsRegistry | undefined;
  readonly prefix: string;
  readonly lagIntervalMs: number;
  readonly latencyBuckets: readonly number[];
  readonly durationBuckets: readonly number[];
  readonly publishSubjectLabel: ((subject: string) => string) | undefined;
}

export const DEFAULT_LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
export const DEFAULT_DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface ResolvedTracingOptions {
  readonly tracerName: string;
}

/** `metrics` module option; `true` takes every default. Needs `prom-client` installed. */
export interface MetricsOptions {
  /** Registry to register in; default prom-client's default `register`. */
  registry?: MetricsRegistry;
  /** Put before every metric name, e.g. `orders_` gives `orders_nats_consume_total`; default none. */
  prefix?: string;
  /** How often consumer lag is read from the server; default 15 000 ms. */
  lagIntervalMs?: number;
  /** Buckets (seconds) of `nats_consume_latency_seconds`. */
  latencyBuckets?: number[];
  /** Buckets (seconds) of `nats_handler_duration_seconds`. */
  durationBuckets?: number[];
  /**
   * Maps a publish subject to its `subject` label, to bound cardinality when subjects carry ids
   * (`orders.123.created` to `orders.*.created`). Default: the subject as is.
   */
  publishSubjectLabel?: (subject: string) => string;
}

/** `tracing` module option; `true` takes every default. Needs `@opentelemetry/api` installed. */
export interface TracingOptions {
  /** Name of the tracer spans are created with; default `nestjs-jetstream`. */
  tracerName?: string;
}

export function resolveMetricsOptions(value: boolean | MetricsOptions | undefined): ResolvedMetricsOptions | false {
  if (value === undefined || value === false) return false;
  if (value !== true && (typeof value !== 'object' || value === null)) {
    throw new InvalidOptionsError(`metrics must be true, false or an options object, got ${JSON.stringify(value)}`);
  }
  const opts = value === true ? {} : value;
  const registry = opts.registry;
  if (registry !== undefined && (typeof registry?.getSingleMetric !== 'function' || typeof registry?.metrics !== 'function')) {
    throw new InvalidOptionsError('metrics.registry must be a prom-client Registry (new Registry() or register)');
  }
  const prefix = opts.prefix ?? '';
  if (typeof prefix !== 'string' || !/^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/.test(prefix)) {
    throw new InvalidOptionsError(`metrics.prefix must be a valid Prometheus name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*), got ${JSON.stringify(prefix)}`);
  }
  const lagIntervalMs = opts.lagIntervalMs ?? 15_000;
  if (typeof lagIntervalMs !== 'number' || !Number.isInteger(lagIntervalMs) || lagIntervalMs < 100) {
    throw new InvalidOptionsError(`metrics.lagIntervalMs must be an integer >= 100, got ${JSON.stringify(lagIntervalMs)}`);
  }
  if (opts.publishSubjectLabel !== undefined && typeof opts.publishSubjectLabel !== 'function') {
    throw new InvalidOptionsError('metrics.publishSubjectLabel must be a function (subject) => label');
  }
  return {
    registry,
    prefix,
    lagIntervalMs,
    latencyBuckets: buckets(opts.latencyBuckets, DEFAULT_LATENCY_BUCKETS, 'metrics.latencyBuckets'),
    durationBuckets: buckets(opts.durationBuckets, DEFAULT_DURATION_BUCKETS, 'metrics.durationBuckets'),
    publishSubjectLabel: opts.publishSubjectLabel,
  };
}

export function resolveTracingOptions(value: boolean | TracingOptions | undefined): ResolvedTracingOptions | false {
  if (value === undefined || value === false) return false;
  if (value !== true && (typeof value !== 'object' || value === null)) {
    throw new InvalidOptionsError(`tracing must be true, false or an options object, got ${JSON.stringify(value)}`);
  }
  const tracerName = (value === true ? undefined : value.tracerName) ?? 'nestjs-jetstream';
  if (typeof tracerName !== 'string' || tracerName.length === 0) {
    throw new InvalidOptionsError(`tracing.tracerName must be a non-empty string, got ${JSON.stringify(tracerName)}`);
  }
  return { tracerName };
}

function buckets(value: number[] | undefined, fallback: readonly number[], name: string): readonly number[] {
  if (value === undefined) return fallback;
  const ok =
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((b, i) => typeof b === 'number' && Number.isFinite(b) && b > 0 && (i === 0 || b > value[i - 1]));
  if (!ok) throw new InvalidOptionsError(`${name} must be a non-empty increasing list of positive numbers, got ${JSON.stringify(value)}`);
  return [...value];
}
