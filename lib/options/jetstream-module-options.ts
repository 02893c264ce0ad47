import type { NodeConnectionOptions } from '@nats-io/transport-node';
import type { StreamConfig } from '@nats-io/jetstream';
import type { ValidatorOptions } from 'class-validator';
import type { ClassTransformOptions } from 'class-transformer';
import type { OnEventOptions } from '../decorators/on-event-options.js';
import type { ScheduleDefinition } from './schedule-definition.js';
import type { Codec } from '../wire/codec.js';
import type { MetricsOptions, ResolvedMetricsOptions, ResolvedTracingOptions, TracingOptions } from './observability-options.js';

/** KV bucket of exactly-once handlers' idempotency records, unless `idempotency.bucket` names another. */
export const DEFAULT_IDEMPOTENCY_BUCKET = 'nestjs_jetstream_idempotency';

/**
 * A stream the module ensures at startup: NATS's own stream configuration (snake_case,
 * durations in nanoseconds), with `name` and `subjects` required.
 */
export type StreamDefinition = Partial<StreamConfig> & { name: string; subjects: string[] };

/** Connection options of the NATS client, passed through; `servers` has its own option. */
export type NatsConnectionOptions = Omit<NodeConnectionOptions, 'servers'>;

export interface JetStreamModuleOptions {
  /** Default: env `NATS_URL`, else `nats://127.0.0.1:4222`. */
  servers?: string | string[];
  /** Name, credentials, TLS, reconnect settings... Reconnects forever unless told otherwise. */
  connection?: NatsConnectionOptions;
  /** Streams created when missing and updated when the change is allowed. */
  streams?: StreamDefinition[];
  /**
   * Server-side schedules (nats-server message schedules) created or updated at startup, like
   * streams. The server fires them, once per tick whatever the number of app instances.
   */
  schedules?: ScheduleDefinition[];
  /** Defaults for every `@OnEvent` handler of the application (a durable name is per handler). */
  defaults?: Partial<Omit<OnEventOptions, 'durable' | 'connection' | 'inbox'>>;
  /** Time in-flight handlers get to finish on shutdown; default 10 000 ms. */
  shutdownTimeoutMs?: number;
  /** Default publish acknowledgement timeout; default 5 000 ms. */
  publishTimeoutMs?: number;
  /** class-validator options for class-typed payloads, or `false` to skip validation. */
  validation?: ValidatorOptions | false;
  /** class-transformer options used to turn JSON into payload class instances. */
  transform?: ClassTransformOptions;
  /**
   * Codec of every publish that names none, and of handlers' messages without a `Content-Type`
   * header; default JSON. A codec other than JSON stamps its content type on each message.
   */
  codec?: Codec;
  /**
   * More codecs consumers may meet, picked by a message's `Content-Type` header (JSON and
   * `codec` are always known). E.g. `[msgpackCodec]` while producers move from JSON to msgpack.
   */
  codecs?: Codec[];
  /** Idempotency records of `exactly-once` handlers: KV bucket name and record lifetime (default 24 h). */
  idempotency?: { bucket?: string; ttlMs?: number };
  /** Retention of dead-letter streams the module creates; default 14 days. */
  deadLetterMaxAgeMs?: number;
  /**
   * Resends of a publish whose ack did not arrive (timeout, no responders), always with the same
   * `Nats-Msg-Id` so the stream stores it once; default 2.
   */
  publishRetries?: number;
  /** Prometheus metrics (needs `prom-client`); default off. */
  metrics?: boolean | MetricsOptions;
  /** OpenTelemetry spans and `traceparent` propagation (needs `@opentelemetry/api`); default off. */
  tracing?: boolean | TracingOptions;
}

export interface ResolvedModuleOptions {
  readonly servers: string[];
  readonly connection: NatsConnectionOptions;
  readonly streams: StreamDefinition[];
  readonly schedules: readonly ScheduleDefinition[];
  readonly defaults: Partial<Omit<OnEventOptions, 'durable' | 'connection' | 'inbox'>>;
  readonly shutdownTimeoutMs: number;
  readonly publishTimeoutMs: number;
  readonly validation: ValidatorOptions | false;
  readonly transform: ClassTransformOptions;
  /** Undefined: JSON. */
  readonly codec: Codec | undefined;
  readonly codecs: readonly Codec[];
  readonly idempotency: { readonly bucket: string; readonly ttlMs: number };
  readonly deadLetterMaxAgeMs: number;
  readonly publishRetries: number;
  readonly metrics: ResolvedMetricsOptions | false;
  readonly tracing: ResolvedTracingOptions | false;
}
