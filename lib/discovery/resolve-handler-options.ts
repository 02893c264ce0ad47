import type { DeliverPolicyOption, OnEventOptions, ResolvedHandlerOptions } from '../decorators/on-event-options.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { positiveInt } from '../module/resolve-module-options.js';

// NATS accepts more, but dots and wildcards in a durable name break the $JS.API subjects it
// lives in, and whitespace breaks the protocol line.
const NAME = /^[A-Za-z0-9_-]+$/;
const POLICIES = new Set(['all', 'new', 'last', 'last-per-subject']);

export function resolveHandlerOptions(
  handlerId: string,
  defaults: Partial<OnEventOptions>,
  options: OnEventOptions,
): ResolvedHandlerOptions {
  const merged: OnEventOptions = { ...defaults, ...options };
  const fail = (message: string): never => {
    throw new InvalidOptionsError(`@OnEvent on ${handlerId}: ${message}`);
  };
  const int = (value: number | undefined, fallback: number, name: string) => {
    try {
      return positiveInt(value, fallback, name);
    } catch (err) {
      return fail((err as Error).message);
    }
  };

  // A module-wide default durable would make every handler share one consumer.
  const durable = options.durable;
  if (durable !== undefined && (typeof durable !== 'string' || !NAME.test(durable))) {
    fail(`durable must match ${NAME} (letters, digits, "-" and "_"), got ${JSON.stringify(durable)}`);
  }
  const stream = merged.stream;
  if (stream !== undefined && (typeof stream !== 'string' || !/^[^\s.*>/\\]+$/.test(stream))) {
    fail(`stream must be a stream name, got ${JSON.stringify(stream)}`);
  }
  const concurrency = int(merged.concurrency, 1, 'concurrency');
  const prefetch = int(merged.prefetch, Math.max(2 * concurrency, 32), 'prefetch');
  const ackWaitMs = int(merged.ackWaitMs, 30_000, 'ackWaitMs');
  const maxAckPending =
    merged.maxAckPending === -1 ? -1 : merged.maxAckPending === undefined ? undefined : int(merged.maxAckPending, 0, 'maxAckPending');
  const deliverPolicy = checkDeliverPolicy(merged.deliverPolicy ?? (durable ? 'all' : 'new'), fail);
  return { durable, stream, concurrency, prefetch, deliverPolicy, ackWaitMs, maxAckPending };
}

function checkDeliverPolicy(policy: DeliverPolicyOption, fail: (m: string) => never): DeliverPolicyOption {
  if (typeof policy === 'string') {
    if (!POLICIES.has(policy)) fail(`deliverPolicy must be one of ${[...POLICIES].join(', ')}, got "${policy}"`);
    return policy;
  }
  if (policy && typeof policy === 'object') {
    if ('startSequence' in policy) {
      if (!Number.isInteger(policy.startSequence) || policy.startSequence < 1) {
        fail(`deliverPolicy.startSequence must be an integer >= 1, got ${JSON.stringify(policy.startSequence)}`);
      }
      return policy;
    }
    if ('startTime' in policy) {
      if (!(policy.startTime instanceof Date) || Number.isNaN(policy.startTime.getTime())) {
        fail('deliverPolicy.startTime must be a valid Date');
      }
      return policy;
    }
  }
  return fail(`deliverPolicy is not recognised: ${JSON.stringify(policy)}`);
}
