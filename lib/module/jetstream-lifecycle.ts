import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type OnModuleDestroy,
} from '@nestjs/common';
import { ApplicationConfig, ExternalContextCreator } from '@nestjs/core';
import { JetStreamConnection } from '../connection/jetstream-connection.js';
import { ConsumerRunner } from '../consumer/consumer-runner.js';
import { Dispatcher } from '../delivery/dispatcher.js';
import { createHandlerInvoker } from '../delivery/handler-invoker.js';
import { Settlement } from '../delivery/settlement.js';
import { HandlerExplorer } from '../discovery/handler-explorer.js';
import type { DiscoveredHandler, HandlerPlan } from '../discovery/handler-plan.js';
import { HandlerConfigurationError } from '../errors/jetstream-errors.js';
import { ConsumerProvisioner } from '../provisioning/consumer-provisioner.js';
import { StreamResolver } from '../provisioning/stream-resolver.js';
import { createPayloadDecoder } from '../serialization/payload-decoder.js';
import { JetStreamPayloadPipe } from '../serialization/payload-validation.pipe.js';
import { hostname } from 'node:os';
import { EventContext } from '../consumer/event-context.js';
import { resolveDeadLetterTarget } from '../dead-letters/dead-letter-target.js';
import { DeadLetterSink } from '../dead-letters/dead-letter-sink.js';
import { FailurePolicy } from '../delivery/failure-policy.js';
import { IdempotencyStore } from '../delivery/idempotency-store.js';
import { JetStreamDeadLetterInterceptor } from '../delivery/interceptors/dead-letter.interceptor.js';
import { JetStreamRetryInterceptor } from '../delivery/interceptors/retry.interceptor.js';
import { NOT_DECODED } from '../delivery/dispatcher.js';
import { JetStreamPublisher } from '../producer/jetstream-publisher.js';
import { StreamProvisioner } from '../provisioning/stream-provisioner.js';
import { decodeJson } from '../serialization/codec.js';
import type { JsMsg } from '@nats-io/jetstream';
import type { ResolvedModuleOptions } from './jetstream-module-options.js';
import { JETSTREAM_RESOLVED_OPTIONS } from './jetstream.tokens.js';

interface RunningHandler {
  readonly plan: HandlerPlan;
  readonly runner: ConsumerRunner;
  readonly consumerName: string;
  readonly ephemeral: boolean;
}

/**
 * Starts a consumer per handler once the whole application is wired, and on shutdown stops
 * them before the connection drains, so in-flight handlers can still ack.
 */
@Injectable()
export class JetStreamLifecycle implements OnApplicationBootstrap, OnModuleDestroy, OnApplicationShutdown {
  private readonly logger = new Logger('JetStream');
  private readonly running: RunningHandler[] = [];
  private stopped?: Promise<void>;

  constructor(
    @Inject(JETSTREAM_RESOLVED_OPTIONS) private readonly options: ResolvedModuleOptions,
    private readonly connection: JetStreamConnection,
    private readonly explorer: HandlerExplorer,
    private readonly contextCreator: ExternalContextCreator,
    private readonly appConfig: ApplicationConfig,
    private readonly publisher: JetStreamPublisher,
  ) {}

  /** Handlers with a running consumer: what the application actually listens to. */
  get handlers(): ReadonlyArray<{ handlerId: string; subject: string; stream: string; consumer: string; processed: number }> {
    return this.running.map(({ plan, runner, consumerName }) => ({
      handlerId: plan.handlerId,
      subject: plan.subject,
      stream: plan.stream,
      consumer: consumerName,
      processed: runner.processed,
    }));
  }

  async onApplicationBootstrap(): Promise<void> {
    try {
      const plans = await this.plan(this.explorer.explore(this.options.defaults));
      const provisioner = new ConsumerProvisioner(this.connection);
      const streams = new StreamProvisioner(this.connection);
      const settlement = new Settlement(
        this.logger,
        this.connection.serverAtLeast(2, 10, 4),
        this.options.publishTimeoutMs,
      );
      const interceptors = { deadLetter: new JetStreamDeadLetterInterceptor(), retry: new JetStreamRetryInterceptor() };
      const payloadPipe = new JetStreamPayloadPipe(this.options.validation, this.options.transform);
      const store = plans.some((p) => p.options.delivery === 'exactly-once')
        ? await IdempotencyStore.open(
            this.connection.nc,
            this.options.idempotency.bucket,
            this.options.idempotency.ttlMs,
            `${hostname()}:${process.pid}`,
          )
        : undefined;
      const ensuredDeadLetters = new Set<string>();
      for (const plan of plans) {
        const provisioned = await provisioner.ensure(plan);
        const target = resolveDeadLetterTarget(plan.options.dlq, plan.stream, plan.options.durable ?? plan.handlerId.replace(/[^\w-]/g, '_'));
        if (target && !ensuredDeadLetters.has(`${target.stream} ${target.subject}`)) {
          await streams.ensureDeadLetterStream(target.stream, target.subject, this.options.deadLetterMaxAgeMs);
          ensuredDeadLetters.add(`${target.stream} ${target.subject}`);
        }
        const decoder = createPayloadDecoder(plan.payloadType);
        const ordered = plan.options.orderBy !== undefined && plan.options.concurrency > 1;
        const dispatcher = new Dispatcher(
          { stream: plan.stream, consumer: provisioned.name, durable: plan.options.durable, handlerId: plan.handlerId },
          {
            policy: new FailurePolicy(plan.options),
            sink: target ? new DeadLetterSink(this.publisher, target) : undefined,
          },
          decoder,
          createHandlerInvoker(this.contextCreator, this.appConfig, plan.instance, plan.methodName, {
            ...interceptors,
            payloadPipe: JetStreamPayloadPipe.appliesTo(plan.payloadType) ? payloadPipe : undefined,
          }),
          settlement,
          {
            delivery: plan.options.delivery,
            retryInPlace: ordered,
            ackWaitMs: plan.options.ackWaitMs,
            idempotency: store ? { store, leaseMs: plan.options.ackWaitMs } : undefined,
          },
          this.logger,
        );
        const runner = new ConsumerRunner(
          provisioned.consumer,
          dispatcher,
          settlement,
          {
            handlerId: plan.handlerId,
            concurrency: plan.options.concurrency,
            prefetch: plan.options.prefetch,
            ackWaitMs: plan.options.ackWaitMs,
            orderKey: ordered ? createOrderKey(plan, provisioned.name, decoder.raw) : undefined,
          },
          this.logger,
        );
        this.running.push({ plan, runner, consumerName: provisioned.name, ephemeral: provisioned.ephemeral });
        await runner.start();
        this.logger.log(
          `${plan.handlerId} consumes ${plan.subject} from stream "${plan.stream}" (${plan.options.durable ? `durable "${plan.options.durable}"` : 'ephemeral'}, ${plan.options.delivery}, concurrency ${plan.options.concurrency}${ordered ? ', ordered' : ''}${target ? `, dead letters to ${target.subject}` : ''})`,
        );
      }
    } catch (err) {
      // Nest does not run shutdown hooks when bootstrap fails; without this the open
      // connection would keep the process alive after the error.
      await this.stopConsumers();
      await this.connection.close();
      throw err;
    }
  }

  async onModuleDestroy(): Promise<void> {
    await this.stopConsumers();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.stopConsumers();
    await this.connection.close();
  }

  private stopConsumers(): Promise<void> {
    this.stopped ??= (async () => {
      const provisioner = new ConsumerProvisioner(this.connection);
      await Promise.all(this.running.map(({ runner }) => runner.stop(this.options.shutdownTimeoutMs)));
      await Promise.all(
        this.running.filter((r) => r.ephemeral).map((r) => provisioner.removeEphemeral(r.plan.stream, r.consumerName)),
      );
    })();
    return this.stopped;
  }

  /** Resolves every handler's stream and rejects clashing durables before anything is created. */
  private async plan(handlers: DiscoveredHandler[]): Promise<HandlerPlan[]> {
    const resolver = new StreamResolver(this.connection);
    const plans: HandlerPlan[] = [];
    for (const handler of handlers) {
      const stream = await resolver.resolve(handler.handlerId, handler.subject, handler.options.stream);
      plans.push({ ...handler, stream });
    }
    const byDurable = new Map<string, HandlerPlan>();
    for (const plan of plans) {
      if (!plan.options.durable) continue;
      const key = `${plan.stream}\u0000${plan.options.durable}`;
      const other = byDurable.get(key);
      if (other) {
        throw new HandlerConfigurationError(
          `Durable "${plan.options.durable}" on stream "${plan.stream}" is claimed by ${other.handlerId} (${other.subject}) and ${plan.handlerId} (${plan.subject}); a durable feeds exactly one handler, give each its own durable name`,
        );
      }
      byDurable.set(key, plan);
    }
    return plans;
  }
}

/**
 * The ordering key of a message. A key function gets the parsed payload, which the handler then
 * reuses; a payload that cannot be parsed gets a lane of its own and fails in the handler path.
 */
function createOrderKey(plan: HandlerPlan, consumer: string, raw: boolean): (msg: JsMsg) => { key: string; decoded: unknown } {
  const orderBy = plan.options.orderBy!;
  if (orderBy === 'subject') return (msg) => ({ key: msg.subject, decoded: NOT_DECODED });
  const descriptor = { stream: plan.stream, consumer, durable: plan.options.durable, handlerId: plan.handlerId };
  return (msg) => {
    let decoded: unknown;
    try {
      decoded = raw ? msg.data : decodeJson(msg.data);
    } catch {
      return { key: '\u0000undecodable', decoded: NOT_DECODED };
    }
    try {
      return { key: String(orderBy(decoded, new EventContext(msg, descriptor))), decoded };
    } catch {
      return { key: '\u0000no-key', decoded };
    }
  };
}
