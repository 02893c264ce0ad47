import { Logger } from '@nestjs/common';
import { Server, type CustomTransportStrategy, type MessageHandler } from '@nestjs/microservices';
import type { Msg, Subscription } from '@nats-io/transport-node';
import { lastValueFrom } from 'rxjs';
import { JetStreamConnection } from '../connection/jetstream-connection.js';
import { ConsumerEngine } from '../consumer/consumer-engine.js';
import type { EventContext } from '../context/event-context.js';
import type { OnEventOptions } from '../decorators/on-event-options.js';
import type { HandlerRegistration } from '../discovery/handler-plan.js';
import { resolveHandlerOptions } from '../discovery/resolve-handler-options.js';
import { describeCause, HandlerConfigurationError, PayloadValidationError } from '../errors/jetstream-errors.js';
import type { JetStreamModuleOptions } from '../options/jetstream-module-options.js';
import { resolveModuleOptions } from '../options/resolve-module-options.js';
import { JetStreamObservability } from '../observability/jetstream-observability.js';
import { JetStreamPublisher } from '../producer/jetstream-publisher.js';
import { assertFilterSubject } from '../options/subject-validation.js';
import { StreamProvisioner } from '../provisioning/stream-provisioner.js';
import { StreamResolver } from '../provisioning/stream-resolver.js';
import { decodeJson, encodePayload, prepareCodecs } from '../serialization/codec.js';
import { headerOf } from '../serialization/message-headers.js';
import { StandardSchemaPipe } from '../serialization/standard-schema.pipe.js';
import { CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE } from '../wire/codec.js';
import { eventFailure, keepEventHandlerErrors } from './event-failure.js';
import { JetStreamContext, JetStreamRequestContext } from './jetstream-context.js';
import { assertRequestPatternsFreeOfDeclaredStreams, assertRequestPatternsFreeOfServerStreams } from './request-subjects.js';
import { errorForWire } from './reply-envelope.js';

/** `transport` argument of `@EventPattern`/`@MessagePattern` to bind a handler to this server only. */
export const JETSTREAM_TRANSPORT = Symbol.for('nestjs-jetstream');

export interface JetStreamServerOptions extends JetStreamModuleOptions {
  /** Queue group of `@MessagePattern` subscriptions, so instances share requests; default `nestjs-jetstream`. */
  queue?: string;
}

/**
 * `@nestjs/microservices` server strategy on the module's engine: `@EventPattern` handlers
 * consume from JetStream with the same options and guarantees as `@OnEvent` (their extras are
 * `OnEventOptions`), and `@MessagePattern` handlers answer core NATS requests in a queue group.
 */
export class JetStreamServer extends Server implements CustomTransportStrategy {
  // Handler errors must reach the engine, which retries or dead-letters them.
  override readonly propagatesEventHandlerErrors = true;
  private connection?: JetStreamConnection;
  private engine?: ConsumerEngine;
  private readonly subscriptions: Subscription[] = [];
  private readonly jsLogger = new Logger('JetStreamServer');

  constructor(private readonly options: JetStreamServerOptions = {}) {
    super();
    this.transportId = JETSTREAM_TRANSPORT;
    // Before Nest builds the handlers' pipelines: their failures must reach the engine intact.
    keepEventHandlerErrors();
  }

  async listen(callback: (err?: unknown, ...optionalParams: unknown[]) => void): Promise<void> {
    try {
      await this.start();
      callback();
    } catch (err) {
      await this.close().catch(() => undefined);
      callback(err);
    }
  }

  async close(): Promise<void> {
    await this.engine?.stop();
    await Promise.all(this.subscriptions.splice(0).map((s) => s.drain().catch(() => undefined)));
    await this.connection?.close();
  }

  on(): never {
    throw new Error('JetStreamServer does not support event listeners; connection events are logged');
  }

  unwrap<T>(): T {
    if (!this.connection) throw new Error('JetStreamServer is not listening yet');
    return this.connection.nc as T;
  }

  private async start(): Promise<void> {
    const resolved = resolveModuleOptions(this.options);
    const events: Array<[string, MessageHandler]> = [];
    const requests: Array<[string, MessageHandler]> = [];
    for (const [pattern, handler] of this.messageHandlers) {
      assertFilterSubject(pattern);
      (handler.isEventHandler ? events : requests).push([pattern, handler]);
    }
    const requestPatterns = requests.map(([pattern]) => pattern);
    assertRequestPatternsFreeOfDeclaredStreams(requestPatterns, resolved.streams);
    // Before connecting: a missing optional peer must fail without leaving a connection open.
    const observability = await JetStreamObservability.create(resolved);
    const eventOptions = events.map(([pattern, handler]) => {
      const handlerId = `@EventPattern(${pattern})`;
      const options = resolveHandlerOptions(handlerId, resolved.defaults, (handler.extras ?? {}) as OnEventOptions);
      if (options.batch) throw new HandlerConfigurationError(`${handlerId}: batch handlers are @OnEvent handlers only; the microservices strategy calls a handler per message`);
      return [pattern, handler, options] as const;
    });
    await prepareCodecs([resolved.codec, ...resolved.codecs, ...eventOptions.map(([, , options]) => options.codec)]);
    const connection = await JetStreamConnection.open(resolved);
    this.connection = connection;
    await new StreamProvisioner(connection).ensureAll(resolved.streams);
    await assertRequestPatternsFreeOfServerStreams(requestPatterns, new StreamResolver(connection));
    const publisher = new JetStreamPublisher(connection, resolved, observability);
    const registrations: HandlerRegistration[] = [];
    for (const [pattern, handler, options] of eventOptions) {
      // A schema validates before the handler, as the module's payload pipe does for @OnEvent.
      const schema = options.schema ? new StandardSchemaPipe(options.schema) : undefined;
      registrations.push({
        handlerId: `@EventPattern(${pattern})`,
        subject: pattern,
        options,
        payloadType: undefined,
        invoke: schema
          ? async (payload, ctx) => this.invokeEvent(handler, await schema.transform(payload), ctx as EventContext)
          : (payload, ctx) => this.invokeEvent(handler, payload, ctx as EventContext),
      });
    }
    for (const [pattern, handler] of requests) this.subscribeRequests(connection, pattern, handler);
    this.engine = new ConsumerEngine(connection, resolved, publisher, this.jsLogger, observability);
    await this.engine.start(registrations);
  }

  private async invokeEvent(handler: MessageHandler, payload: unknown, ctx: EventContext): Promise<void> {
    const rpcCtx = new JetStreamContext(ctx);
    try {
      const result = await handler(payload, rpcCtx);
      await lastValueFrom(this.transformToObservable(result), { defaultValue: undefined });
    } catch (err) {
      throw eventFailure(rpcCtx, err);
    }
  }

  private subscribeRequests(connection: JetStreamConnection, pattern: string, handler: MessageHandler): void {
    const sub = connection.nc.subscribe(pattern, {
      queue: this.options.queue ?? 'nestjs-jetstream',
      callback: (err, msg) => {
        if (err) {
          this.jsLogger.error(`@MessagePattern(${pattern}) subscription failed: ${describeCause(err)}`);
          return;
        }
        void this.answer(msg, handler);
      },
    });
    this.subscriptions.push(sub);
    this.jsLogger.log(`@MessagePattern(${pattern}) answers requests (queue "${this.options.queue ?? 'nestjs-jetstream'}")`);
  }

  private async answer(msg: Msg, handler: MessageHandler): Promise<void> {
    let envelope: { response: unknown } | { err: unknown };
    try {
      const contentType = msg.headers ? headerOf(msg.headers, CONTENT_TYPE_HEADER) : undefined;
      if (contentType !== undefined && !contentType.toLowerCase().startsWith(JSON_CONTENT_TYPE)) {
        throw new PayloadValidationError(`@MessagePattern requests are JSON; this one has Content-Type "${contentType}" (codecs apply to events only)`);
      }
      const data = decodeJson(msg.data);
      const result = await handler(data, new JetStreamRequestContext(msg));
      envelope = { response: await lastValueFrom(this.transformToObservable(result), { defaultValue: undefined }) };
    } catch (err) {
      envelope = { err: errorForWire(err) };
    }
    if (!msg.reply) return;
    try {
      msg.respond(encodePayload(envelope));
    } catch (err) {
      this.jsLogger.warn(`Could not reply on ${msg.subject}: ${describeCause(err)}`);
    }
  }
}
