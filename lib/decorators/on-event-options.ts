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

export interface OnEventOptions {
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
  /** Unacknowledged messages allowed across all instances of this consumer. */
  maxAckPending?: number;
}

/** Options after module defaults and built-in defaults have been applied and checked. */
export interface ResolvedHandlerOptions {
  readonly durable: string | undefined;
  readonly stream: string | undefined;
  readonly concurrency: number;
  readonly prefetch: number;
  readonly deliverPolicy: DeliverPolicyOption;
  readonly ackWaitMs: number;
  readonly maxAckPending: number | undefined;
}
