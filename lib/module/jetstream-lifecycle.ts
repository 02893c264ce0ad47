import {
  Inject,
  Injectable,
  Logger,
  Optional,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type OnModuleDestroy,
} from '@nestjs/common';
import { ApplicationConfig, DiscoveryService, ExternalContextCreator } from '@nestjs/core';
import { JetStreamConnection } from '../connection/jetstream-connection.js';
import { ConsumerEngine, type RunningHandlerInfo } from '../consumer/consumer-engine.js';
import type { HandledEvent } from '../delivery/dispatcher.js';
import { createHandlerInvoker } from '../delivery/handler-invoker.js';
import { JetStreamDeadLetterInterceptor } from '../delivery/interceptors/dead-letter.interceptor.js';
import { JetStreamRetryInterceptor } from '../delivery/interceptors/retry.interceptor.js';
import { HandlerExplorer } from '../discovery/handler-explorer.js';
import type { HandlerRegistration } from '../discovery/handler-plan.js';
import { JetStreamObservability } from '../observability/jetstream-observability.js';
import { JetStreamInbox } from '../inbox/jetstream-inbox.js';
import { JetStreamPublisher } from '../producer/jetstream-publisher.js';
import { JetStreamPayloadPipe } from '../serialization/payload-validation.pipe.js';
import { StandardSchemaPipe } from '../serialization/standard-schema.pipe.js';
import { prepareCodecs } from '../serialization/codec.js';
import type { ResolvedModuleOptions } from '../options/jetstream-module-options.js';
import { DEFAULT_CONNECTION, JETSTREAM_CONNECTION_NAME, JETSTREAM_RESOLVED_OPTIONS } from '../options/jetstream.tokens.js';

/**
 * Starts a consumer per `@OnEvent` handler once the whole application is wired, and on shutdown
 * stops them before the connection drains, so in-flight handlers can still ack.
 */
@Injectable()
export class JetStreamLifecycle implements OnApplicationBootstrap, OnModuleDestroy, OnApplicationShutdown {
  private readonly logger: Logger;
  private readonly engine: ConsumerEngine;

  constructor(
    @Inject(JETSTREAM_CONNECTION_NAME) readonly connectionName: string,
    @Inject(JETSTREAM_RESOLVED_OPTIONS) private readonly options: ResolvedModuleOptions,
    private readonly connection: JetStreamConnection,
    private readonly explorer: HandlerExplorer,
    private readonly contextCreator: ExternalContextCreator,
    private readonly appConfig: ApplicationConfig,
    private readonly discovery: DiscoveryService,
    publisher: JetStreamPublisher,
    @Optional() observability?: JetStreamObservability,
    @Optional() private readonly inbox?: JetStreamInbox,
  ) {
    this.logger = new Logger(connectionName === DEFAULT_CONNECTION ? 'JetStream' : `JetStream:${connectionName}`);
    this.engine = new ConsumerEngine(connection, options, publisher, this.logger, observability);
  }

  /** Handlers with a running consumer: what the application actually listens to. */
  get handlers(): RunningHandlerInfo[] {
    return this.engine.handlers;
  }

  /**
   * Calls `listener` after every handler call with its outcome and payload; returns the
   * unsubscribe function. Costs nothing while no one listens.
   */
  onHandled(listener: (event: HandledEvent) => void): () => void {
    return this.engine.onHandled(listener);
  }

  async onApplicationBootstrap(): Promise<void> {
    try {
      const interceptors = { deadLetter: new JetStreamDeadLetterInterceptor(), retry: new JetStreamRetryInterceptor() };
      const payloadPipe = new JetStreamPayloadPipe(this.options.validation, this.options.transform);
      const handlers = this.explorer.explore(this.options.defaults, this.connectionName, this.connectionNames());
      await prepareCodecs(handlers.map((h) => h.options.codec));
      const registrations: HandlerRegistration[] = handlers.map((handler) => ({
        handlerId: handler.handlerId,
        subject: handler.subject,
        options: handler.options,
        payloadType: handler.payloadType,
        invoke: createHandlerInvoker(this.contextCreator, this.appConfig, handler.instance, handler.methodName, {
          ...interceptors,
          // A schema takes the place of the declared type's class binding. A batch handler's
          // messages are validated one by one before the call (createBatchFeed), not as an array.
          payloadPipe: handler.options.batch
            ? undefined
            : handler.options.schema
            ? new StandardSchemaPipe(handler.options.schema)
            : JetStreamPayloadPipe.appliesTo(handler.payloadType)
              ? payloadPipe
              : undefined,
        }),
      }));
      await this.engine.start(registrations, this.inbox);
    } catch (err) {
      // Nest does not run shutdown hooks when bootstrap fails; without this the open
      // connection would keep the process alive after the error.
      await this.engine.stop();
      await this.connection.close();
      throw err;
    }
  }

  /** Every connection of the application: each JetStreamModule instance has one lifecycle. */
  private connectionNames(): Set<string> {
    const names = new Set<string>([this.connectionName]);
    for (const wrapper of this.discovery.getProviders()) {
      const instance: unknown = wrapper.instance;
      if (instance instanceof JetStreamLifecycle) names.add(instance.connectionName);
    }
    return names;
  }

  async onModuleDestroy(): Promise<void> {
    await this.engine.stop();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.engine.stop();
    await this.connection.close();
  }
}
