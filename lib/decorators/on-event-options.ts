import type { EventContext } from '../context/event-context.js';

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
   * Exactly-once through the application's database: the handler's writes and a row for the
   * message's key (the redrive's idempotency header, else `Nats-Msg-Id`, else stream and
   * sequence) commit in one transaction, which the handler receives with
   * `@InboxTransaction()`. A message whose key has a row is acked without running the handler.
   * Needs a `durable` and the module's `inbox: { database }`; it is `delivery: 'exactly-once'`
   * through the database instead of the KV lease.
   */
  inbox?: boolean;
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
  readonly inbox: boolean;
}
