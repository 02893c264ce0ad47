import type { JsMsg } from '@nats-io/jetstream';
import { deliveryCountOf } from './delivery-count.js';

/** Facts about the handler a message is delivered to, shared by all its messages. */
export interface ConsumerDescriptor {
  readonly stream: string;
  readonly consumer: string;
  readonly durable: string | undefined;
  readonly handlerId: string;
  /** The partition of a partitioned consumer group, whose stored subjects begin with its number. */
  readonly partition?: number;
}

/**
 * Second argument of every `@OnEvent` handler. Fields are read lazily from the message so a
 * handler pays only for what it looks at.
 */
export class EventContext {
  private headerCache?: Readonly<Record<string, string[]>>;
  private inPlaceRetries = 0;
  private abandoned = false;

  constructor(
    /** The raw JetStream message, for what this context does not wrap. */
    readonly message: JsMsg,
    private readonly descriptor: ConsumerDescriptor,
  ) {}

  /** The subject it was published on (a partitioned group's stored partition token left out). */
  get subject(): string {
    const subject = this.message.subject;
    return this.descriptor.partition === undefined ? subject : subject.slice(subject.indexOf('.') + 1);
  }

  /** The partition of a partitioned consumer group this message belongs to; undefined elsewhere. */
  get partition(): number | undefined {
    return this.descriptor.partition;
  }

  get stream(): string {
    return this.descriptor.stream;
  }

  /** Stream sequence: the message's position in its stream. */
  get sequence(): number {
    return this.message.seq;
  }

  /** 1 on first delivery, counting every redelivery (nak, ack timeout, crash) after it. */
  get deliveryCount(): number {
    return deliveryCountOf(this.message);
  }

  /**
   * The try this handler call is: the delivery count plus retries made in place (ordered
   * handlers retry without giving the message back, so their delivery count stays put).
   */
  get attempt(): number {
    return deliveryCountOf(this.message) + this.inPlaceRetries;
  }

  get redelivered(): boolean {
    return this.message.redelivered;
  }

  /** When the stream stored the message. */
  get timestamp(): Date {
    return this.message.time;
  }

  /** The publisher's `Nats-Msg-Id`, when it set one. */
  get msgId(): string | undefined {
    return this.header('Nats-Msg-Id');
  }

  /** Consumer name on the server (the durable name, or the generated ephemeral name). */
  get consumer(): string {
    return this.descriptor.consumer;
  }

  get durable(): string | undefined {
    return this.descriptor.durable;
  }

  /** `ClassName.method` of the handler running this message. */
  get handler(): string {
    return this.descriptor.handlerId;
  }

  /** All headers, each with every value it was sent with. */
  get headers(): Readonly<Record<string, string[]>> {
    if (!this.headerCache) {
      const out: Record<string, string[]> = {};
      const h = this.message.headers;
      if (h) for (const key of h.keys()) out[key] = h.values(key);
      this.headerCache = out;
    }
    return this.headerCache;
  }

  /** First value of a header, or undefined. */
  header(name: string): string | undefined {
    const value = this.message.headers?.get(name);
    return value === '' || value === undefined ? undefined : value;
  }

  /** Tells the server the handler is still working, resetting the ack wait for this message. */
  working(): void {
    this.message.working();
  }

  /** @internal The handler's descriptor: one object per handler, shared by all its contexts. */
  static descriptorOf(ctx: EventContext): ConsumerDescriptor {
    return ctx.descriptor;
  }

  /** @internal */
  static countInPlaceRetry(ctx: EventContext): void {
    ctx.inPlaceRetries++;
  }

  /** @internal The call timed out and its outcome was settled without it: ignore what it does later. */
  static abandon(ctx: EventContext): void {
    ctx.abandoned = true;
  }

  /** @internal */
  static isAbandoned(ctx: EventContext): boolean {
    return ctx.abandoned;
  }
}
