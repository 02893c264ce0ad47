import { requireServerFeature, serverHasFeature } from '../options/server-features.js';
import { CircuitBreaker } from '../delivery/circuit-breaker.js';
import { DatabaseHold } from '../inbox/database-hold.js';
import { extendConsumerPause } from '../provisioning/consumer-pause.js';
import type { Logger } from '@nestjs/common';
import type { JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { hostname } from 'node:os';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import { resolveDeadLetterTarget } from '../dead-letters/dead-letter-target.js';
import { DeadLetterSink } from '../dead-letters/dead-letter-sink.js';
import { Dispatcher, NOT_DECODED, type HandledEvent } from '../delivery/dispatcher.js';
import { HandledObservers } from '../delivery/handled-observers.js';
import { FailurePolicy } from '../delivery/failure-policy.js';
import { IdempotencyStore } from '../delivery/idempotency-store.js';
import { ReplyInbox } from '../connection/reply-inbox.js';
import { Settlement } from '../delivery/settlement.js';
import type { HandlerPlan, HandlerRegistration } from '../discovery/handler-plan.js';
import { HandlerConfigurationError } from '../errors/jetstream-errors.js';
import type { ResolvedModuleOptions } from '../options/jetstream-module-options.js';
import type { JetStreamPublisher } from '../producer/jetstream-publisher.js';
import { ConsumerProvisioner } from '../provisioning/consumer-provisioner.js';
import { StreamProvisioner } from '../provisioning/stream-provisioner.js';
import { StreamResolver } from '../provisioning/stream-resolver.js';
import { createPayloadDecoder, withKvRemovals, type PayloadDecoder } from '../serialization/payload-decoder.js';
import { kvBucketOf, kvBucketStream } from '../context/kv-change.js';
import { Kvm, type KvOptions } from '@nats-io/kv';
import { streamInfoOrUndefined } from '../provisioning/stream-info.js';
import { ConsumerRunner } from './consumer-runner.js';
import { stopRunningHandler, type RunningHandler } from './running-handler.js';
import { checkPartitionedPlan, startPartitionedHandler, type LaunchExtras, type PartitionedHandler } from './partitioned-handler.js';
import { createBatchFeed } from './batch-feed.js';
import type { ConsumerLagSampler } from '../observability/consumer-lag-sampler.js';
import { JetStreamObservability } from '../observability/jetstream-observability.js';
import { EventContext } from '../context/event-context.js';
import type { JetStreamInbox } from '../inbox/jetstream-inbox.js';

export interface RunningHandlerInfo {
  readonly handlerId: string;
  readonly subject: string;
  readonly stream: string;
  readonly consumer: string;
  readonly processed: number;
  /** False once its consumer loop has ended (stopping, or a failure that stopped it). */
  readonly active: boolean;
}

/**
 * The one implementation of consume, settle, retry and dead-letter: given handlers (from
 * `@OnEvent` or from `@EventPattern`), it resolves their streams, provisions their consumers
 * and runs them; on stop it lets in-flight calls finish and hands back the rest.
 */
/** What every handler's launch shares. */
interface LaunchShared {
  readonly settlement: Settlement;
  readonly store: IdempotencyStore | undefined;
  readonly inbox: JetStreamInbox | undefined;
  readonly streams: StreamProvisioner;
  readonly ensuredDeadLetters: Set<string>;
}

export class ConsumerEngine {
  private readonly running: RunningHandler[] = [];
  private readonly groups: PartitionedHandler[] = [];
  private stopped?: Promise<void>;
  private readonly observer = new HandledObservers();
  private lag?: ConsumerLagSampler;
  private inbox?: ReplyInbox;
  private store?: IdempotencyStore;

  constructor(
    private readonly connection: JetStreamConnection,
    private readonly options: ResolvedModuleOptions,
    private readonly publisher: JetStreamPublisher,
    private readonly logger: Logger,
    private readonly observability: JetStreamObservability = JetStreamObservability.off,
  ) {}

  get handlers(): RunningHandlerInfo[] {
    return this.all().map(({ plan, runner, consumerName }) => ({
      handlerId: plan.handlerId,
      subject: plan.subject,
      stream: plan.stream,
      consumer: consumerName,
      processed: runner.processed,
      active: runner.active,
    }));
  }

  /** Every consumer this instance runs now: the handlers', and the partitions it owns. */
  private all(): RunningHandler[] {
    return [...this.running, ...this.groups.flatMap((g) => g.running())];
  }

  /** Calls `listener` after every handler call (tests, metrics); returns the unsubscribe. */
  onHandled(listener: (event: HandledEvent) => void): () => void {
    return this.observer.add(listener);
  }

  /** `inbox`: the application's inbox (`JetStreamInboxModule`), which `inbox: true` handlers need. */
  async start(registrations: readonly HandlerRegistration[], inbox?: JetStreamInbox): Promise<void> {
    const plans = await this.plan(registrations);
    const inboxHandlers = plans.filter((p) => p.options.inbox);
    if (inboxHandlers.length > 0) {
      if (!inbox) {
        throw new HandlerConfigurationError(
          `${inboxHandlers.map((p) => p.handlerId).join(', ')}: inbox: true needs the inbox's database; import JetStreamInboxModule.forRoot({ database }) (or forRootAsync) in the application module`,
        );
      }
      await inbox.start();
    }
    const streams = new StreamProvisioner(this.connection);
    // Confirmed acks (at-most-once, exactly-once) and idempotency records share one reply
    // inbox; at-least-once alone never waits for a reply, so it gets none.
    // Inbox handlers need neither: their row commits with the handler, and a plain ack follows.
    const replyInbox = plans.some((p) => p.options.delivery !== 'at-least-once' && !p.options.inbox)
      ? (this.inbox = new ReplyInbox(this.connection.nc, this.options.publishTimeoutMs))
      : undefined;
    const settlement = new Settlement(this.logger, this.connection.serverAtLeast(2, 10, 4), replyInbox);
    const store = plans.some((p) => p.options.delivery === 'exactly-once' && !p.options.inbox)
      ? await IdempotencyStore.open(
          this.connection.nc,
          replyInbox!,
          this.options.idempotency.bucket,
          this.options.idempotency.ttlMs,
          `${hostname()}:${process.pid}`,
          serverHasFeature(this.connection, 'messageTtl'),
          this.logger,
        )
      : undefined;
    this.store = store;
    const durability = await store?.durabilityWarning().catch(() => undefined);
    if (durability) this.logger.warn(durability);
    const ensuredDeadLetters = new Set<string>();
    const denialMark = this.connection.permissions.mark();
    const shared: LaunchShared = { settlement, store, inbox, streams, ensuredDeadLetters };
    for (const plan of plans) {
      if (plan.options.partitions) {
        const group = await startPartitionedHandler(
          this.connection,
          plan,
          (partitionPlan, extras) => this.launch(partitionPlan, shared, extras),
          this.options.shutdownTimeoutMs,
          this.logger,
        );
        this.groups.push(group);
        continue;
      }
      this.running.push(await this.launch(plan, shared, {}));
    }
    await this.assertMayPull(denialMark);
    this.lag = this.observability.sampleLag(
      this.connection.jsm,
      () => this.all().map((r) => ({ stream: r.plan.stream, consumer: r.consumerName })),
      this.logger,
    );
  }

  /** Provisions one handler's consumer and starts its runner (a partition is one such handler). */
  private async launch(plan: HandlerPlan, shared: LaunchShared, extras: LaunchExtras): Promise<RunningHandler> {
    const provisioned = await new ConsumerProvisioner(this.connection).ensure(plan);
    const target = resolveDeadLetterTarget(plan.options.dlq, extras.deadLetterOwner?.stream ?? plan.stream, extras.deadLetterOwner?.durable ?? plan.options.durable, plan.handlerId);
    if (target && !shared.ensuredDeadLetters.has(`${target.stream} ${target.subject}`)) {
      await shared.streams.ensureDeadLetterStream(target.stream, target.subject, this.options.deadLetterMaxAgeMs);
      shared.ensuredDeadLetters.add(`${target.stream} ${target.subject}`);
    }
    const instrumentation = this.observability.forHandler({ subject: plan.subject, stream: plan.stream, consumer: provisioned.name });
    const valueDecoder = createPayloadDecoder(plan.payloadType, {
      fallback: plan.options.codec ?? this.options.codec,
      codecs: this.options.codecs,
      schemaVersion: plan.options.schemaVersion,
    });
    const decoder = kvBucketOf(plan.subject) === undefined ? valueDecoder : withKvRemovals(valueDecoder);
    const ordered = plan.options.orderBy !== undefined && plan.options.concurrency > 1;
    const breakerOptions = plan.options.circuitBreaker;
    const breaker = breakerOptions
      ? new CircuitBreaker(
          plan.handlerId,
          breakerOptions,
          {
            pause: async (until) => void (await extendConsumerPause(this.connection, plan.stream, provisioned.name, until)),
            changed: (state, opened) => instrumentation?.circuitBreaker(state, opened),
          },
          this.logger,
        )
      : undefined;
    // The gauge exists for the handlers that have a breaker, from the start (0: closed).
    if (breaker) instrumentation?.circuitBreaker('closed', false);
    const databaseHold = plan.options.inbox ? new DatabaseHold(shared.inbox!.reachability) : undefined;
    const dispatcher = new Dispatcher(
      { stream: plan.stream, consumer: provisioned.name, durable: plan.options.durable, handlerId: plan.handlerId, partition: extras.partition },
      { policy: new FailurePolicy(plan.options), sink: target ? new DeadLetterSink(this.publisher, target) : undefined, instrumentation, breaker },
      decoder,
      plan.invoke,
      shared.settlement,
      {
        delivery: plan.options.delivery,
        // Exclusive: a nak'ed failure would come back after later messages; retry in place.
        retryInPlace: ordered || plan.options.exclusive !== undefined,
        ackWaitMs: plan.options.ackWaitMs,
        timeoutMs: plan.options.timeoutMs,
        idempotency: shared.store ? { store: shared.store, leaseMs: plan.options.ackWaitMs } : undefined,
        inbox: plan.options.inbox ? shared.inbox!.store : undefined,
        databaseHold,
        observer: this.observer,
      },
      this.logger,
    );
    const batch = plan.options.batch
      ? createBatchFeed(plan, provisioned.name, { sink: target ? new DeadLetterSink(this.publisher, target) : undefined, instrumentation, inbox: plan.options.inbox ? shared.inbox!.store : undefined, databaseHold }, shared.settlement, this.options, this.observer, this.logger)
      : undefined;
    const runner = new ConsumerRunner(
      provisioned.consumer,
      dispatcher,
      shared.settlement,
      {
        handlerId: plan.handlerId,
        concurrency: plan.options.concurrency,
        // A batch handler pulls one batch per slot ahead at most: nothing waits behind more.
        prefetch: batch ? batch.maxMessages * plan.options.concurrency : plan.options.prefetch,
        batch,
        group: plan.options.exclusive ? { name: plan.options.exclusive.group, expiresMs: plan.options.exclusive.pullExpiresMs } : undefined,
        ackWaitMs: plan.options.ackWaitMs,
        orderKey: ordered ? createOrderKey(plan, provisioned.name, decoder) : undefined,
        pool: extras.pool,
        breaker,
      },
      this.logger,
    );
    const handler: RunningHandler = { plan, runner, consumerName: provisioned.name, ephemeral: provisioned.ephemeral, breaker, databaseHold };
    await runner.start();
    (extras.partition === undefined ? this.logger.log : this.logger.debug).call(
      this.logger,
      `${plan.handlerId} consumes ${plan.subject} from stream "${plan.stream}" (${plan.options.durable ? `durable "${plan.options.durable}"` : 'ephemeral'}, ${plan.options.inbox ? `exactly-once through the inbox ${shared.inbox!.options.table.name}` : plan.options.delivery}, concurrency ${plan.options.concurrency}${ordered ? ', ordered' : ''}${batch ? `, batches of up to ${batch.maxMessages} within ${batch.maxWaitMs} ms` : ''}${plan.options.exclusive ? `, exclusive (pinned TTL ${plan.options.exclusive.pinnedTtlMs} ms)` : ''}${target ? `, dead letters to ${target.subject}` : ''}${breakerOptions ? `, circuit breaker after ${breakerOptions.failures} failures for ${breakerOptions.coolDownMs} ms` : ''})`,
    );
    return handler;
  }

  /**
   * A pull request the user may not publish is refused only by an asynchronous -ERR: the
   * consumer would sit idle forever. One round trip after every runner sent its first pull
   * tells, so startup fails naming the handler and the subject instead.
   */
  private async assertMayPull(mark: number): Promise<void> {
    // Lets each runner's loop take its first turn, which is when the client sends the pull.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const denials = await this.connection.permissions.since(mark);
    for (const { plan, consumerName } of this.running) {
      const pull = `.CONSUMER.MSG.NEXT.${plan.stream}.${consumerName}`;
      const denial = denials.find((d) => d.operation === 'publish' && d.subject.endsWith(pull));
      if (denial) {
        throw new HandlerConfigurationError(
          `${plan.handlerId}: the NATS user may not pull from consumer "${consumerName}" on stream "${plan.stream}" (${denial.message}); grant it publish permission on "${denial.subject}"`,
        );
      }
    }
  }

  /** Stops every consumer; safe to call more than once. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      await this.lag?.stop();
      const provisioner = new ConsumerProvisioner(this.connection);
      await Promise.all([
        ...this.groups.map((group) => group.stop()),
        ...this.running.map((handler) => stopRunningHandler(handler, this.options.shutdownTimeoutMs, this.connection.jsm, this.logger)),
      ]);
      await Promise.all(
        this.running.filter((r) => r.ephemeral).map((r) => provisioner.removeEphemeral(r.plan.stream, r.consumerName)),
      );
      this.store?.close();
      this.inbox?.close();
    })();
    return this.stopped;
  }

  /** Resolves every handler's stream and rejects clashing durables before anything is created. */
  private async plan(registrations: readonly HandlerRegistration[]): Promise<HandlerPlan[]> {
    const resolver = new StreamResolver(this.connection);
    const plans: HandlerPlan[] = [];
    for (const registration of registrations) {
      // The breaker pauses the consumer on the server; an older server would ignore the pause
      // and keep delivering while the breaker held messages.
      if (registration.options.circuitBreaker) requireServerFeature(this.connection, 'consumerPause', `${registration.handlerId}: circuitBreaker`);
      const bucket = registration.options.kvBucket;
      if (bucket?.create) await ensureKvBucket(this.connection, bucket.name, bucket.create, this.logger);
      const stream = await resolver.resolve(registration.handlerId, registration.subject, registration.options.stream);
      plans.push({ ...registration, stream });
    }
    for (const plan of plans) if (plan.options.partitions) checkPartitionedPlan(this.connection, plan);
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
function createOrderKey(plan: HandlerPlan, consumer: string, decoder: PayloadDecoder): (msg: JsMsg) => { key: string; decoded: unknown } {
  const option = plan.options.orderBy!;
  if (option === 'subject') return (msg) => ({ key: msg.subject, decoded: NOT_DECODED });
  const orderBy = option as (payload: unknown, ctx: EventContext) => string;
  const descriptor = { stream: plan.stream, consumer, durable: plan.options.durable, handlerId: plan.handlerId };
  return (msg) => {
    let decoded: unknown;
    try {
      decoded = decoder.decode(msg);
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

/**
 * A KV change handler's bucket, created when missing. An existing one is left as it is: its
 * settings belong to whoever made it, and changing them (history, TTL) would change what others read.
 */
async function ensureKvBucket(connection: JetStreamConnection, bucket: string, options: Partial<KvOptions>, logger: Logger): Promise<void> {
  if (await streamInfoOrUndefined(connection.jsm, kvBucketStream(bucket))) return;
  await new Kvm(connection.nc).create(bucket, options);
  logger.log(`Created KV bucket "${bucket}" (stream ${kvBucketStream(bucket)})`);
}
