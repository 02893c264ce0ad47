import { Logger } from '@nestjs/common';
import { RetentionPolicy, type StreamConfig, type StreamSource } from '@nats-io/jetstream';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import { describeCause, HandlerConfigurationError } from '../errors/jetstream-errors.js';
import { streamInfoOrUndefined } from './stream-info.js';

export interface PartitionStreamPlan {
  readonly handlerId: string;
  /** The stream the handler's subject is published to. */
  readonly stream: string;
  readonly durable: string;
  /** The handler's subject, a filter of `stream`. */
  readonly subject: string;
  readonly count: number;
  /** 1-based `*` wildcards of `subject` that make the key. */
  readonly wildcards: readonly number[];
  readonly startAt: 'all' | 'new';
}

export interface PartitionStream {
  readonly name: string;
  readonly replicas: number;
}

/** The group's stream: `<stream>-<durable>`, as orbit.go names an elastic group's stream. */
export function partitionStreamName(stream: string, durable: string): string {
  return `${stream}-${durable}`;
}

/**
 * The transform that prefixes each message's subject with its partition: `orders.*.created`
 * keyed by wildcard 1 into 12 becomes `{{Partition(12,1)}}.orders.{{Wildcard(1)}}.created`
 * (the server hashes the key tokens; every publisher agrees without any client code).
 */
export function partitionTransform(subject: string, count: number, wildcards: readonly number[]): { src: string; dest: string } {
  let n = 0;
  const tokens = subject.split('.').map((t) => (t === '*' ? `{{Wildcard(${++n})}}` : t));
  return { src: subject, dest: `{{Partition(${count},${wildcards.join(',')})}}.${tokens.join('.')}` };
}

/**
 * Ensures the group's work-queue stream, sourcing the handler's subject from its stream through
 * the partition transform. The source stream and its publishers stay as they are: a transform
 * on the source stream itself would rename every stored subject and hide them from the stream's
 * other consumers. Work-queue retention removes each message once its partition acks it, so
 * the copy holds only the group's backlog.
 */
export async function ensurePartitionStream(connection: JetStreamConnection, plan: PartitionStreamPlan): Promise<PartitionStream> {
  const logger = new Logger('JetStream');
  const { jsm } = connection;
  const name = partitionStreamName(plan.stream, plan.durable);
  const source = await streamInfoOrUndefined(jsm, plan.stream);
  if (!source) throw new HandlerConfigurationError(`${plan.handlerId}: stream "${plan.stream}" does not exist, so partitions has nothing to source`);
  const replicas = source.config.num_replicas;
  const transform = partitionTransform(plan.subject, plan.count, plan.wildcards);
  const existing = await streamInfoOrUndefined(jsm, name);
  if (existing) {
    const sources = existing.config.sources ?? [];
    const found = sources.length === 1 && sources[0].name === plan.stream ? sources[0].subject_transforms ?? [] : undefined;
    const same = found?.length === 1 && found[0].src === transform.src && found[0].dest === transform.dest;
    if (!same || existing.config.retention !== RetentionPolicy.Workqueue) {
      throw new HandlerConfigurationError(
        `${plan.handlerId}: the group's stream "${name}" exists with ${found ? `the partitioning ${JSON.stringify(found)}` : `sources ${JSON.stringify(sources.map((s) => s.name))}`}, and this handler asks for ${plan.stream} ${JSON.stringify(transform)}. The partition count and key are fixed once the group exists (a message's partition would change under its consumer): use a new durable, or delete stream "${name}" once it is drained`,
      );
    }
    return { name, replicas: existing.config.num_replicas };
  }
  const sourceConfig: StreamSource = { name: plan.stream, subject_transforms: [transform] };
  if (plan.startAt === 'new') sourceConfig.opt_start_time = new Date().toISOString();
  const config: Partial<StreamConfig> & { name: string } = {
    name,
    retention: RetentionPolicy.Workqueue,
    storage: source.config.storage,
    num_replicas: replicas,
    sources: [sourceConfig],
    allow_direct: true,
  };
  try {
    await jsm.streams.add(config);
    logger.log(`Created stream "${name}" for the partitioned group "${plan.durable}": ${plan.subject} from "${plan.stream}" into ${plan.count} partitions`);
  } catch (err) {
    // Another instance starting at the same moment may have made the same stream.
    const raced = await streamInfoOrUndefined(jsm, name).catch(() => undefined);
    if (!raced) throw new HandlerConfigurationError(`${plan.handlerId}: could not create the group's stream "${name}": ${describeCause(err)}`, { cause: err });
  }
  return { name, replicas };
}
