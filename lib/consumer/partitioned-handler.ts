import type { Logger } from '@nestjs/common';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import type { HandlerPlan } from '../discovery/handler-plan.js';
import { partitionKeyWildcards } from '../discovery/resolve-partition-options.js';
import { HandlerConfigurationError } from '../errors/jetstream-errors.js';
import { PartitionGroup } from '../groups/partition-group.js';
import { requireServerFeature } from '../options/server-features.js';
import { ensurePartitionStream } from '../provisioning/partition-stream.js';
import { ConcurrencyGate } from './concurrency-gate.js';
import { stopRunningHandler, type RunningHandler } from './running-handler.js';

/** What a partition's runner gets beyond its plan. */
export interface LaunchExtras {
  /** The instance's slots, shared by every partition it owns. */
  readonly pool?: ConcurrencyGate;
  readonly partition?: number;
  /** Dead letters of every partition go where the handler's own would: `dlq.<stream>.<durable>`. */
  readonly deadLetterOwner?: { readonly stream: string; readonly durable: string | undefined };
}

export type LaunchPartition = (plan: HandlerPlan, extras: LaunchExtras) => Promise<RunningHandler>;

/** A partitioned handler on this instance: its group membership and the partitions it owns now. */
export interface PartitionedHandler {
  readonly plan: HandlerPlan;
  readonly group: PartitionGroup;
  running(): RunningHandler[];
  stop(): Promise<void>;
}

/**
 * Startup checks of a partitioned handler that need its subject and the server: run for every
 * handler before any consumer is created, so a bad one stops the startup with nothing half made.
 */
export function checkPartitionedPlan(connection: JetStreamConnection, plan: HandlerPlan): number[] {
  requireServerFeature(connection, 'partitionedConsumers', `${plan.handlerId} with partitions`);
  return partitionKeyWildcards(plan.subject, plan.options.partitions!.key, (message) => {
    throw new HandlerConfigurationError(`${plan.handlerId}: ${message}`);
  });
}

/**
 * Partition `i` of durable `billing` is the durable `billing-p<i>` on the group's stream,
 * filtered on `<i>.<subject>`, pinned like an exclusive consumer (one message in hand). This
 * instance runs the partitions the group assigns it, with at most `concurrency` handler calls at
 * once across them.
 */
export async function startPartitionedHandler(
  connection: JetStreamConnection,
  plan: HandlerPlan,
  launch: LaunchPartition,
  shutdownTimeoutMs: number,
  logger: Logger,
): Promise<PartitionedHandler> {
  const partitions = plan.options.partitions!;
  const durable = plan.options.durable!;
  const wildcards = checkPartitionedPlan(connection, plan);
  const stream = await ensurePartitionStream(connection, {
    handlerId: plan.handlerId,
    stream: plan.stream,
    durable,
    subject: plan.subject,
    count: partitions.count,
    wildcards,
    startAt: plan.options.deliverPolicy === 'new' ? 'new' : 'all',
  });
  const pool = new ConcurrencyGate(plan.options.concurrency);
  const running = new Map<number, RunningHandler>();
  const partitionPlan = (p: number): HandlerPlan => ({
    ...plan,
    stream: stream.name,
    subject: `${p}.${plan.subject}`,
    options: { ...plan.options, durable: `${durable}-p${p}`, deliverPolicy: 'all', concurrency: 1, prefetch: 1, orderBy: undefined, exclusive: partitions.pinned },
  });
  const group = new PartitionGroup(
    { stream: plan.stream, durable, count: partitions.count, memberTtlMs: partitions.memberTtlMs, replicas: stream.replicas, label: `${plan.handlerId} (partitioned group "${durable}")` },
    async (p) => {
      const handler = await launch(partitionPlan(p), { pool, partition: p, deadLetterOwner: { stream: plan.stream, durable } });
      running.set(p, handler);
      return {
        stop: async () => {
          running.delete(p);
          await stopRunningHandler(handler, shutdownTimeoutMs, connection.jsm, logger);
        },
      };
    },
    logger,
  );
  await group.start(connection.nc);
  logger.log(
    `${plan.handlerId} consumes ${plan.subject} from stream "${plan.stream}" as partitioned group "${durable}" (${partitions.count} partitions by wildcard ${wildcards.join(', ')}, stream "${stream.name}", ${plan.options.delivery}, at most ${plan.options.concurrency} at once on this instance, member ${group.memberId})`,
  );
  return { plan, group, running: () => [...running.values()], stop: () => group.stop() };
}
