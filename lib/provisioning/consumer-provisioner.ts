import { requireServerFeature } from '../options/server-features.js';
import { Logger } from '@nestjs/common';
import { nanos } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  type Consumer,
  type ConsumerConfig,
  type ConsumerInfo,
} from '@nats-io/jetstream';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import type { DeliverPolicyOption } from '../decorators/on-event-options.js';
import type { HandlerPlan } from '../discovery/handler-plan.js';
import { ConsumerConfigDriftError, describeCause, HandlerConfigurationError } from '../errors/jetstream-errors.js';
import { diffConfig } from './config-diff.js';
import { ApiCode, hasApiCode } from '../errors/jetstream-api-codes.js';

// The server cannot change these on an existing durable; recreating it would reset its
// position and replay or skip messages, so a mismatch stops the startup instead.
// A priority policy cannot be switched on an existing consumer either (ADR-42).
const FIXED_FIELDS = ['ack_policy', 'deliver_policy', 'opt_start_seq', 'opt_start_time', 'priority_policy', 'priority_groups'] as const;
const EDITABLE_FIELDS = ['filter_subject', 'ack_wait', 'max_ack_pending', 'max_deliver', 'priority_timeout'] as const;

// Long enough to ride out a reconnect, short enough that a crashed instance's ephemeral
// consumer does not linger on the server.
const EPHEMERAL_INACTIVE_MS = 60_000;
const MAX_DELIVER_HEADROOM = 10;

export interface ProvisionedConsumer {
  readonly consumer: Consumer;
  readonly name: string;
  readonly ephemeral: boolean;
}

export class ConsumerProvisioner {
  private readonly logger = new Logger('JetStream');

  constructor(private readonly connection: JetStreamConnection) {}

  async ensure(plan: HandlerPlan): Promise<ProvisionedConsumer> {
    if (plan.options.exclusive) requireServerFeature(this.connection, 'exclusiveConsumer', `${plan.handlerId} with exclusive`);
    const config = buildConsumerConfig(plan);
    const info = plan.options.durable ? await this.ensureDurable(plan, config) : await this.createEphemeral(plan, config);
    return {
      consumer: this.connection.js.consumers.getConsumerFromInfo(info),
      name: info.name,
      ephemeral: !plan.options.durable,
    };
  }

  /** Best effort: an ephemeral consumer would expire by itself after its inactivity threshold. */
  async removeEphemeral(stream: string, name: string): Promise<void> {
    try {
      await this.connection.jsm.consumers.delete(stream, name);
    } catch {
      // Already gone or the connection is down; the server cleans up after the threshold.
    }
  }

  private async ensureDurable(plan: HandlerPlan, desired: Partial<ConsumerConfig>): Promise<ConsumerInfo> {
    const { jsm } = this.connection;
    const durable = plan.options.durable as string;
    let existing: ConsumerInfo | undefined;
    try {
      existing = await jsm.consumers.info(plan.stream, durable);
    } catch (err) {
      if (!hasApiCode(err, ApiCode.ConsumerNotFound)) throw err;
    }
    if (!existing) {
      try {
        const created = await jsm.consumers.add(plan.stream, desired);
        this.logger.log(`Created durable consumer "${durable}" on stream "${plan.stream}" for ${plan.subject}`);
        return created;
      } catch (err) {
        // Another instance starting at the same moment may have won the race.
        if (hasApiCode(err, ApiCode.ConsumerAlreadyExists)) {
          existing = await jsm.consumers.info(plan.stream, durable);
        } else {
          throw new HandlerConfigurationError(
            `${plan.handlerId}: could not create durable "${durable}" on stream "${plan.stream}": ${describeCause(err)}`,
            { cause: err },
          );
        }
      }
    }
    const fixed = diffConfig(pick(desired, FIXED_FIELDS), normaliseTimes(existing.config));
    if (fixed.length > 0) {
      throw new ConsumerConfigDriftError(
        plan.stream,
        durable,
        fixed,
        `the server has ${fixed.map((f) => `${f}=${show(existing.config, f)}`).join(', ')}, ${plan.handlerId} asks for ${fixed.map((f) => `${f}=${show(desired, f)}`).join(', ')}. A durable keeps its position, so these cannot change; use a new durable name, or delete the consumer if re-reading from the new start is intended`,
      );
    }
    const editable = diffConfig(pick(desired, EDITABLE_FIELDS), existing.config);
    if (editable.length === 0) return existing;
    try {
      const updated = await jsm.consumers.update(plan.stream, durable, pick(desired, EDITABLE_FIELDS));
      this.logger.log(`Updated durable consumer "${durable}" on stream "${plan.stream}" (${editable.join(', ')})`);
      return updated;
    } catch (err) {
      throw new ConsumerConfigDriftError(plan.stream, durable, editable, `the server refused the update: ${describeCause(err)}`);
    }
  }

  private async createEphemeral(plan: HandlerPlan, desired: Partial<ConsumerConfig>): Promise<ConsumerInfo> {
    try {
      return await this.connection.jsm.consumers.add(plan.stream, {
        ...desired,
        inactive_threshold: nanos(EPHEMERAL_INACTIVE_MS),
      });
    } catch (err) {
      throw new HandlerConfigurationError(
        `${plan.handlerId}: could not create an ephemeral consumer on stream "${plan.stream}": ${describeCause(err)}`,
        { cause: err },
      );
    }
  }
}

export function buildConsumerConfig(plan: HandlerPlan): Partial<ConsumerConfig> {
  const { options } = plan;
  const config: Partial<ConsumerConfig> = {
    ack_policy: AckPolicy.Explicit,
    filter_subject: plan.subject,
    ack_wait: nanos(options.ackWaitMs),
    ...deliverPolicyConfig(options.deliverPolicy),
  };
  if (options.durable) config.durable_name = options.durable;
  // A backstop above the handler's attempts: the module dead-letters at maxAttempts, and the
  // spare deliveries let a failed dead-letter publish be tried again. At-most-once acks before
  // running, so redeliveries only happen when that ack is lost.
  config.max_deliver = options.delivery === 'at-most-once' ? -1 : options.retry.maxAttempts + MAX_DELIVER_HEADROOM;
  if (options.maxAckPending !== undefined) config.max_ack_pending = options.maxAckPending;
  if (options.exclusive) {
    config.priority_policy = 'pinned_client';
    config.priority_groups = [options.exclusive.group];
    config.priority_timeout = nanos(options.exclusive.pinnedTtlMs);
    // One message in hand at a time: what a dead instance held is redelivered before anything later.
    config.max_ack_pending = 1;
  }
  return config;
}

function deliverPolicyConfig(policy: DeliverPolicyOption): Partial<ConsumerConfig> {
  switch (policy) {
    case 'all':
      return { deliver_policy: DeliverPolicy.All };
    case 'new':
      return { deliver_policy: DeliverPolicy.New };
    case 'last':
      return { deliver_policy: DeliverPolicy.Last };
    case 'last-per-subject':
      return { deliver_policy: DeliverPolicy.LastPerSubject };
  }
  if ('startSequence' in policy) {
    return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: policy.startSequence };
  }
  return { deliver_policy: DeliverPolicy.StartTime, opt_start_time: policy.startTime.toISOString() };
}

function pick<T extends object>(config: T, fields: readonly string[]): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    const v = (config as Record<string, unknown>)[f];
    if (v !== undefined) out[f] = v;
  }
  return out as Partial<T>;
}

// The server echoes start times with its own precision and zone format.
function normaliseTimes(config: ConsumerConfig): ConsumerConfig {
  if (!config.opt_start_time) return config;
  return { ...config, opt_start_time: new Date(config.opt_start_time).toISOString() };
}

function show(config: object, field: string): string {
  return JSON.stringify((config as Record<string, unknown>)[field]);
}
