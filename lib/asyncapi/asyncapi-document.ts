import type { DeliveryMode } from '../decorators/on-event-options.js';
import type { JsonSchema } from './json-schema.js';

/** The parts of an AsyncAPI 3.0 document this package writes. */

export interface AsyncApiReference {
  readonly $ref: string;
}

export interface AsyncApiInfo {
  title: string;
  version: string;
  description?: string;
}

export interface AsyncApiServer {
  /** `host:port`, without credentials. */
  host: string;
  protocol: string;
  protocolVersion?: string;
  description?: string;
}

export interface AsyncApiParameter {
  description?: string;
}

export interface AsyncApiChannel {
  /**
   * The subject, NATS wildcards written as `{parameters}`. `null` (unknown upfront) for a
   * request's reply inbox, and for an object pattern, whose braces would read as parameters.
   */
  address: string | null;
  description?: string;
  messages: Record<string, AsyncApiReference>;
  parameters?: Record<string, AsyncApiParameter>;
  /** The subject exactly as in the decorator, wildcards included; absent for a reply inbox. */
  'x-jetstream-subject'?: string;
  /** Stream capturing the subject, when the module's options tell. */
  'x-jetstream-stream'?: string;
}

/** Where a request's answer goes: a channel and its messages. */
export interface AsyncApiOperationReply {
  channel: AsyncApiReference;
  messages: AsyncApiReference[];
}

/**
 * A handler. `@OnEvent` and `@EventPattern` handlers consume a stream and carry the consumer
 * fields (delivery, concurrency, retry...); a `@MessagePattern` handler answers core NATS
 * requests and carries a `reply` instead.
 */
export interface AsyncApiOperation {
  action: 'receive' | 'send';
  channel: AsyncApiReference;
  messages: AsyncApiReference[];
  summary?: string;
  reply?: AsyncApiOperationReply;
  /** The decorator that declared the handler, or `forRoot({ schedules })` for a schedule's firings. */
  'x-jetstream-source': '@OnEvent' | '@EventPattern' | '@MessagePattern' | 'forRoot({ schedules })';
  /** `Class.method` of the handler; absent on a schedule's `send` operation. */
  'x-jetstream-handler'?: string;
  /** Named connection of an `@OnEvent` handler; pattern handlers use JetStreamServer's. */
  'x-jetstream-connection'?: string;
  'x-jetstream-stream'?: string;
  /** Absent for ephemeral consumers (one per instance, new messages only). */
  'x-jetstream-durable'?: string;
  'x-jetstream-delivery'?: DeliveryMode;
  'x-jetstream-concurrency'?: number;
  /** A batch handler: messages are handed over together, up to `maxMessages` per call. */
  'x-jetstream-batch'?: { maxMessages: number; maxWaitMs: number };
  'x-jetstream-retry'?: { maxAttempts: number; backoff: 'exponential' | 'fixed' | readonly number[] } | false;
  /** Where exhausted messages go; the subject is only known once the stream is. */
  'x-jetstream-dead-letter'?: { stream: string; subject?: string } | false;
  /** A declared schedule: the server (not the app) sends its payload to the channel when it fires. */
  'x-jetstream-schedule'?: AsyncApiSchedule;
}

/** A schedule declared in `forRoot({ schedules })`: one of `cron`, `every` and `at`. */
export interface AsyncApiSchedule {
  name: string;
  cron?: string;
  timeZone?: string;
  every?: number | string;
  /** ISO 8601. */
  at?: string;
  /** What every firing publishes, when declared. */
  payload?: unknown;
}

export interface AsyncApiMessage {
  name: string;
  title?: string;
  contentType: string;
  payload: JsonSchema | AsyncApiReference;
  /** A versioned contract: its schema name, the handler's version and every version it accepts (upcast). */
  'x-jetstream-schema'?: { name?: string; version: number; accepts: number[] };
}

export interface AsyncApiStream {
  name: string;
  subjects: string[];
}

export interface AsyncApiDocument {
  asyncapi: '3.0.0';
  info: AsyncApiInfo;
  defaultContentType: 'application/json';
  servers?: Record<string, AsyncApiServer>;
  channels: Record<string, AsyncApiChannel>;
  operations: Record<string, AsyncApiOperation>;
  components: {
    messages: Record<string, AsyncApiMessage>;
    schemas: Record<string, JsonSchema>;
  };
  /** Streams the module's options declare (forRootAsync options are unknown without running the factory). */
  'x-jetstream-streams'?: AsyncApiStream[];
}
