import type { EventContext } from './event-context.js';
import type { ConsumerDescriptor } from './event-context.js';

/** One message of a batch: its payload as the handler received it, and its facts. */
export interface BatchMessage<T = unknown> {
  readonly payload: T;
  /** Subject, sequence, delivery count, headers, msg-id... of this message. */
  readonly context: EventContext;
}

/**
 * Second argument of a batch handler. `items[i]` is the message whose payload is `payloads[i]`.
 * The call's outcome settles every message: resolving acks them all, throwing retries them all
 * (or dead-letters them, as the failure policy says). To settle some differently, mark them
 * with `fail(index, error)` and resolve: only those are retried or dead-lettered.
 */
export class BatchContext<T = unknown> {
  private readonly failures = new Map<number, unknown>();

  constructor(
    readonly items: readonly BatchMessage<T>[],
    private readonly descriptor: ConsumerDescriptor,
  ) {}

  get size(): number {
    return this.items.length;
  }

  get stream(): string {
    return this.descriptor.stream;
  }

  /** Consumer name on the server. */
  get consumer(): string {
    return this.descriptor.consumer;
  }

  get durable(): string | undefined {
    return this.descriptor.durable;
  }

  /** `ClassName.method` of the handler running this batch. */
  get handler(): string {
    return this.descriptor.handlerId;
  }

  /**
   * This message failed: it is retried with backoff, or dead-lettered when `error` is a
   * `TerminalError`, the handler's `retryable` says no, or its attempts are used up. The other
   * messages of the batch are acked when the call resolves.
   */
  fail(index: number, error: unknown): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.items.length) {
      throw new RangeError(`${this.handler}: batch.fail(${index}): no such item (the batch holds ${this.items.length})`);
    }
    this.failures.set(index, error ?? new Error('marked failed by the handler'));
  }

  /** Keeps the whole batch's ack wait alive while a long call runs (the module also does so on a timer). */
  working(): void {
    for (const item of this.items) item.context.working();
  }

  /** @internal The failure marked for item `index`, if any. */
  static failureOf(batch: BatchContext<unknown>, index: number): { error: unknown } | undefined {
    return batch.failures.has(index) ? { error: batch.failures.get(index) } : undefined;
  }
}
