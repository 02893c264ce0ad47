import type { KvOptions } from '@nats-io/kv';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { EventContext } from '../context/event-context.js';
import type { Codec } from '../wire/codec.js';

/**
 * Where a consumer starts reading. Only applies when a durable is first created, or to every
 * start of an ephemeral consumer: a durable remembers its position across restarts.
 */
export type DeliverPolicyOption =
  | 'all'
  | 'new'
  | 'last'
  | 'last-per-subject'
  | { startSequence: number }
  | { startTime: Date };

/**
 * - `at-most-once`: the server confirms the ack before the handler runs; a failure is never
 *   redelivered.
 * - `at-least-once`: ack after success; failures are retried, then dead-lettered.
 * - `exactly-once`: at-least-once plus an idempotency record per message, so a redelivered
 *   message that was already handled is acked without running the handler again.
 */
export type DeliveryMode = 'at-most-once' | 'at-least-once' | 'exactly-once';

export interface RetryOptions {
  /** Deliveries in all, the first included; default 5. */
  maxAttempts?: number;
  /** Default `'exponential'`; a list gives the delay after each failed attempt in turn. */
  backoff?: 'exponential' | 'fixed' | number[];
  /** Default 1 000 ms. */
  initialDelayMs?: number;
  /** Default 60 000 ms. Delayed messages hold a slot of `maxAckPending` while they wait. */
  maxDelayMs?: number;
  /** Equal jitter (between half and all of the delay); default true. */
  jitter?: boolean;
}

export type DeadLetterOption = boolean | string | { subject?: string; stream?: string };

/**
 * Key of an ordering lane: messages with the same key are handled one at a time, in order.
 * The function's payload parameter is `never` so that a function of the handler's own payload
 * type, `(e: OrderEvent) => e.orderId`, type-checks under `strictFunctionTypes`; it is called
 * with the decoded payload.
 */
export type OrderKey = 'subject' | ((payload: never, ctx: EventContext) => string);

/**
 * A batch handler: `handle(payloads: T[], batch: BatchContext<T>)`. Messages are handed over
 * together, up to `maxMessages`, waiting at most `maxWaitMs` after the first one for more.
 */
export interface BatchHandlerOptions {
  /** Messages in one call at most; 1 to 10 000. */
  maxMessages: number;
  /** Longest wait, after the first message of a batch arrived, for the batch to fill; default 50 ms. */
  maxWaitMs?: number;
  /**
   * Class of one payload, bound and validated per message (a parameter typed `T[]` tells
   * reflection only `Array`). An invalid message is dead-lettered alone; the rest are delivered.
   */
  payloadType?: new (...args: never[]) => object;
}

/**
 * Turns a payload of version `n` into version `n + 1`. The parameter is `never` for the reason
 * `OrderKey`'s is: a function of the older payload's own type type-checks.
 */
export type Upcaster = (older: never) => unknown;

/** The schema version a handler handles, and how older messages reach it. */
export interface SchemaVersionOptions {
  /** Schema name the handler expects; a message stamped with another name is refused. */
  readonly name?: string;
  /** The version the handler is written for (an integer >= 1). */
  readonly version: number;
  /**
   * Upcasters by the version they start from: `{ 1: (v1) => v2 }`. A v1 message runs through
   * each step up to `version`, before validation. A version with no path up, or one newer than
   * `version`, is dead-lettered with reason `unsupported-schema`.
   */
  readonly upcast?: Readonly<Record<number, Upcaster>>;
}

export interface OnEventOptions {
  /**
   * Name of the connection (`JetStreamModule.forRoot({ name })`) whose server this handler
   * consumes from; default: the connection of `forRoot()` without a name.
   */
  connection?: string;
  /**
   * Durable pull consumer name. Every app instance using the same durable shares its messages,
   * which is how a service scales out. Omitted: an ephemeral consumer per instance that sees
   * new messages only.
   */
  durable?: string;
  /** Stream to consume from; default: the one stream whose subjects cover the handler's subject. */
  stream?: string;
  /** Handler calls in flight at once for this handler; 1 keeps stream order. */
  concurrency?: number;
  /** Messages pulled ahead of the handler; default: twice the concurrency, at least 32. */
  prefetch?: number;
  /** Where a new consumer starts; default `'all'` for durables, `'new'` for ephemeral ones. */
  deliverPolicy?: DeliverPolicyOption;
  /** Time the server waits for an ack before redelivering; default 30 000 ms. */
  ackWaitMs?: number;
  /**
   * Longest a handler call may take before it counts as failed with a `HandlerTimeoutError`
   * (then retried or dead-lettered like any failure). The call is abandoned, not cancelled: its
   * late result is ignored. Default: none (a slow call is kept alive with `working()`).
   */
  timeoutMs?: number;
  /** Unacknowledged messages allowed across all instances of this consumer. */
  maxAckPending?: number;
  /** Delivery guarantee; default `'at-least-once'`. */
  delivery?: DeliveryMode;
  /** Retry policy for failed handler calls, or `false` to dead-letter on the first failure. */
  retry?: false | RetryOptions;
  /** Classifies errors: return false to skip retries and dead-letter at once. */
  retryable?: (error: unknown) => boolean;
  /**
   * Where exhausted and terminal messages go. Default: on for durable handlers (subject
   * `dlq.<stream>.<durable>` in stream `DLQ`), off for ephemeral ones.
   */
  dlq?: DeadLetterOption;
  /**
   * With `concurrency > 1`: messages with the same key run one at a time in stream order,
   * different keys in parallel. Failures are retried in place so a later message of the same
   * key never overtakes an earlier one.
   */
  orderBy?: OrderKey;
  /**
   * A Standard Schema (Zod, Valibot, ArkType, ...) the payload must satisfy: the handler gets
   * the schema's output (transforms and defaults applied). A failure is dead-lettered as
   * `invalid-payload`, each issue's path and message in `Dlq-Error-Message`. Replaces the
   * class binding of the payload's declared type.
   */
  schema?: StandardSchemaV1;
  /**
   * Decodes messages that carry no `Content-Type` header; default: the module's codec (JSON).
   * A message with the header is decoded by the codec of that content type.
   */
  codec?: Codec;
  /** The schema version this handler handles; see `SchemaVersionOptions`. */
  schemaVersion?: SchemaVersionOptions;
  /** Deliver messages in batches; see `BatchHandlerOptions`. At-least-once only. */
  batch?: BatchHandlerOptions;
  /**
   * One instance of the deployment consumes this durable at a time, in stream order; the others
   * stand by and one takes over when it stops or dies (nats-server 2.11+ `pinned_client`
   * priority groups). See `ExclusiveOptions`.
   */
  exclusive?: boolean | ExclusiveOptions;
  /**
   * A partitioned consumer group: messages are split by key into `count` partitions, each
   * consumed by one instance at a time in order, the partitions shared among the live instances
   * (nats-server 2.11+). See `PartitionOptions`.
   */
  partitions?: PartitionOptions;
  /**
   * Exactly-once through the application's database: the handler's writes and a row for the
   * message's key (the redrive's idempotency header, else `Nats-Msg-Id`, else stream and
   * sequence) commit in one transaction, which the handler receives with
   * `@InboxTransaction()`. A message whose key has a row is acked without running the handler.
   * Needs a `durable` and the module's `inbox: { database }`; it is `delivery: 'exactly-once'`
   * through the database instead of the KV lease.
   */
  inbox?: boolean;
  /**
   * Pauses this handler's consumer on the server (nats-server 2.11+) after this many
   * consecutive failures, instead of retrying every message into the dead-letter stream while a
   * dependency is down; `true` for the defaults. See `CircuitBreakerOptions`.
   */
  circuitBreaker?: boolean | CircuitBreakerOptions;
  /** @internal Set by `@OnKvChange`: the bucket it reads, created at startup when missing if `create` is given. */
  kvBucket?: KvBucketDeclaration;
}

/** @internal */
export interface KvBucketDeclaration {
  readonly name: string;
  readonly create: Partial<KvOptions> | undefined;
}

/**
 * A circuit breaker around a handler's dependency. After `failures` consecutive retryable
 * failures it opens: the consumer is paused on the server (every instance stops receiving), and
 * the failed messages wait in this instance instead of being retried, so they use up no
 * attempts. After `coolDownMs` one message runs as a trial: a success closes the breaker, a
 * failure opens it again for another `coolDownMs`.
 */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open it; default 5. Invalid payloads and terminal errors do not count. */
  failures?: number;
  /** How long it stays open (and the consumer paused) before the trial; default 30 000 ms, at least 1 000. */
  coolDownMs?: number;
}

export interface ResolvedCircuitBreakerOptions {
  readonly failures: number;
  readonly coolDownMs: number;
}

export interface ExclusiveOptions {
  /**
   * How long the server keeps the pin on an instance that stopped pulling: the takeover time
   * after a crash (a graceful stop hands the pin over at once). Default 5 000 ms, at least 3 000.
   */
  pinnedTtlMs?: number;
}

export interface PartitionOptions {
  /** Number of partitions: the most instances that can share the work. 1 to 1 024; fixed once created. */
  count: number;
  /**
   * Which `*` wildcards of the handler's subject make the key, 1-based from the left (as
   * `{{wildcard(n)}}`): `'orders.*.created'` with `key: 1` keys by the order id. Default: every
   * `*` of the subject.
   */
  key?: number | readonly number[];
  /**
   * How long an instance that stopped heartbeating still counts as a member: the time before
   * a crashed instance's partitions move. Default 5 000 ms, at least 1 500.
   */
  memberTtlMs?: number;
  /** Pinned TTL of each partition's consumer, as `ExclusiveOptions.pinnedTtlMs`. Default 5 000 ms. */
  pinnedTtlMs?: number;
}

export interface ResolvedRetryPolicy {
  readonly enabled: boolean;
  readonly maxAttempts: number;
  readonly backoff: 'exponential' | 'fixed' | readonly number[];
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly jitter: boolean;
}

export interface ResolvedDeadLetter {
  readonly subject: string;
  readonly stream: string;
}

/** Options after module defaults and built-in defaults have been applied and checked. */
export interface ResolvedHandlerOptions {
  readonly connection: string;
  readonly durable: string | undefined;
  readonly stream: string | undefined;
  readonly concurrency: number;
  readonly prefetch: number;
  readonly deliverPolicy: DeliverPolicyOption;
  readonly ackWaitMs: number;
  readonly timeoutMs: number | undefined;
  readonly maxAckPending: number | undefined;
  readonly delivery: DeliveryMode;
  readonly retry: ResolvedRetryPolicy;
  readonly retryable: ((error: unknown) => boolean) | undefined;
  /** Undefined until the stream is known (the default subject derives from it). */
  readonly dlq: DeadLetterOption;
  readonly orderBy: OrderKey | undefined;
  readonly schema: StandardSchemaV1 | undefined;
  readonly codec: Codec | undefined;
  readonly schemaVersion: SchemaVersionOptions | undefined;
  readonly batch: ResolvedBatchOptions | undefined;
  readonly exclusive: ResolvedExclusiveOptions | undefined;
  readonly partitions: ResolvedPartitionOptions | undefined;
  readonly inbox: boolean;
  readonly circuitBreaker: ResolvedCircuitBreakerOptions | undefined;
  readonly kvBucket: KvBucketDeclaration | undefined;
}

export interface ResolvedExclusiveOptions {
  /** The consumer's one priority group. */
  readonly group: string;
  readonly pinnedTtlMs: number;
  /** Expiry of each pull request, a third of the TTL: a live pinned instance never loses the pin. */
  readonly pullExpiresMs: number;
}

export interface ResolvedPartitionOptions {
  readonly count: number;
  /** 1-based indexes of the subject's `*` wildcards that make the key; empty for all of them. */
  readonly key: readonly number[];
  readonly memberTtlMs: number;
  /** The priority group settings every partition's consumer gets. */
  readonly pinned: ResolvedExclusiveOptions;
}

export interface ResolvedBatchOptions {
  readonly maxMessages: number;
  readonly maxWaitMs: number;
  readonly payloadType: (new (...args: never[]) => object) | undefined;
}
