import type { Msg } from '@nats-io/transport-node';
import type { JsMsg } from '@nats-io/jetstream';
import { BaseRpcContext } from '@nestjs/microservices';
import type { EventContext } from '../context/event-context.js';

/**
 * `@Ctx()` of an `@EventPattern` handler on the JetStream server strategy: the same facts as
 * `EventContext`, on Nest's RPC context class.
 */
export class JetStreamContext extends BaseRpcContext<[EventContext]> {
  constructor(ctx: EventContext) {
    super([ctx]);
  }

  /** The `EventContext` an `@OnEvent` handler would get. */
  get event(): EventContext {
    return this.args[0];
  }

  get subject(): string {
    return this.event.subject;
  }
  get headers(): Readonly<Record<string, string[]>> {
    return this.event.headers;
  }
  get stream(): string {
    return this.event.stream;
  }
  get sequence(): number {
    return this.event.sequence;
  }
  get deliveryCount(): number {
    return this.event.deliveryCount;
  }
  get attempt(): number {
    return this.event.attempt;
  }
  get redelivered(): boolean {
    return this.event.redelivered;
  }
  get timestamp(): Date {
    return this.event.timestamp;
  }
  get msgId(): string | undefined {
    return this.event.msgId;
  }
  get message(): JsMsg {
    return this.event.message;
  }
  header(name: string): string | undefined {
    return this.event.header(name);
  }
  working(): void {
    this.event.working();
  }
  /** Nest NATS transport style accessors, for handlers moved over from it. */
  getSubject(): string {
    return this.subject;
  }
  getHeaders(): Readonly<Record<string, string[]>> {
    return this.headers;
  }
}

/** `@Ctx()` of a `@MessagePattern` handler: a core NATS request. */
export class JetStreamRequestContext extends BaseRpcContext<[Msg]> {
  constructor(msg: Msg) {
    super([msg]);
  }
  get message(): Msg {
    return this.args[0];
  }
  get subject(): string {
    return this.message.subject;
  }
  get headers(): Readonly<Record<string, string[]>> {
    const out: Record<string, string[]> = {};
    const h = this.message.headers;
    if (h) for (const key of h.keys()) out[key] = h.values(key);
    return out;
  }
  header(name: string): string | undefined {
    return this.message.headers?.get(name) || undefined;
  }
  getSubject(): string {
    return this.subject;
  }
  getHeaders(): Readonly<Record<string, string[]>> {
    return this.headers;
  }
}
