import type {
  CircuitBreakerOptions,
  DeliveryMode,
  DeliverPolicyOption,
  OnEventOptions,
  ResolvedCircuitBreakerOptions,
  ResolvedHandlerOptions,
  ResolvedRetryPolicy,
  RetryOptions,
  SchemaVersionOptions,
} from '../decorators/on-event-options.js';
import type { Codec } from '../wire/codec.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { DEFAULT_CONNECTION } from '../options/jetstream.tokens.js';
import { positiveInt } from '../options/resolve-module-options.js';
import { DEFAULT_BACKOFF } from '../delivery/backoff.js';
import { resolveBatchOptions } from './resolve-batch-options.js';
import { resolveExclusiveOptions } from './resolve-exclusive-options.js';
import { resolvePartitionOptions } from './resolve-partition-options.js';

// NATS accepts more, but dots and wildcards in a durable name break the $JS.API subjects it
// lives in, and whitespace breaks the protocol line.
const NAME = /^[A-Za-z0-9_-]+$/;
const POLICIES = new Set(['all', 'new', 'last', 'last-per-subject']);
const MODES = new Set(['at-most-once', 'at-least-once', 'exactly-once']);

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
  const connection = options.connection ?? DEFAULT_CONNECTION;
  if (typeof connection !== 'string' || !NAME.test(connection)) {
    fail(`connection must be the name given to JetStreamModule.forRoot({ name }), got ${JSON.stringify(connection)}`);
  }
  const stream = merged.stream;
  if (stream !== undefined && (typeof stream !== 'string' || !/^[^\s.*>/\\]+$/.test(stream))) {
    fail(`stream must be a stream name, got ${JSON.stringify(stream)}`);
  }
  const concurrency = int(merged.concurrency, 1, 'concurrency');
  const prefetch = int(merged.prefetch, defaultPrefetch(concurrency), 'prefetch');
  const ackWaitMs = int(merged.ackWaitMs, 30_000, 'ackWaitMs');
  const timeoutMs = merged.timeoutMs === undefined ? undefined : int(merged.timeoutMs, 0, 'timeoutMs');
  const maxAckPending =
    merged.maxAckPending === -1 ? -1 : merged.maxAckPending === undefined ? undefined : int(merged.maxAckPending, 0, 'maxAckPending');
  const deliverPolicy = checkDeliverPolicy(merged.deliverPolicy ?? (durable ? 'all' : 'new'), fail);
  const inbox = resolveInbox(defaults, options, fail);
  // The inbox is the handler's own exactly-once path, so it overrides a module-wide default mode.
  const delivery: DeliveryMode = inbox ? 'exactly-once' : (merged.delivery ?? 'at-least-once');
  if (!MODES.has(delivery)) fail(`delivery must be one of ${[...MODES].join(', ')}, got ${JSON.stringify(delivery)}`);
  const retry = resolveRetry(merged.retry, int, fail);
  if (merged.retryable !== undefined && typeof merged.retryable !== 'function') fail('retryable must be a function (error) => boolean');
  const dlq = merged.dlq ?? Boolean(durable);
  checkDeadLetter(dlq, fail);
  const orderBy = merged.orderBy;
  if (orderBy !== undefined && orderBy !== 'subject' && typeof orderBy !== 'function') {
    fail(`orderBy must be 'subject' or a function (payload, ctx) => string, got ${JSON.stringify(orderBy)}`);
  }
  // Per handler only: a module-wide default would change every handler's signature.
  const batch = resolveBatchOptions({ ...merged, delivery, batch: options.batch, inboxResolved: inbox }, int, fail);
  const exclusive = resolveExclusiveOptions({ ...merged, exclusive: options.exclusive, durable }, concurrency, int, fail);
  // Per handler only: a module-wide default would partition every handler's durable.
  const partitions = resolvePartitionOptions({ ...merged, partitions: options.partitions, durable, deliverPolicy: options.deliverPolicy ?? defaults.deliverPolicy }, int, fail);
  const schema = merged.schema;
  if (schema !== undefined && !isStandardSchema(schema)) {
    fail('schema must be a Standard Schema (an object with a "~standard" property: Zod, Valibot, ArkType, ...)');
  }
  const codec = merged.codec;
  if (codec !== undefined && !isCodec(codec)) fail('codec must be an object with contentType, encode(value) and decode(bytes)');
  const schemaVersion = merged.schemaVersion === undefined ? undefined : checkSchemaVersion(merged.schemaVersion, fail);
  const circuitBreaker = resolveCircuitBreaker(merged.circuitBreaker, { delivery, batch: batch !== undefined, partitioned: partitions !== undefined }, int, fail);
  return {
    connection,
    durable,
    stream,
    concurrency,
    prefetch,
    deliverPolicy,
    ackWaitMs,
    timeoutMs,
    maxAckPending,
    delivery,
    retry,
    retryable: merged.retryable,
    dlq,
    orderBy,
    batch,
    exclusive,
    partitions,
    schema,
    codec,
    schemaVersion,
    inbox,
    circuitBreaker,
    // Per handler only, like the durable: a default bucket would make every handler read it.
    kvBucket: options.kvBucket,
  };
}

function isStandardSchema(value: unknown): boolean {
  const standard = (value as { '~standard'?: { validate?: unknown } } | null)?.['~standard'];
  return typeof standard === 'object' && standard !== null && typeof standard.validate === 'function';
}

function isCodec(value: unknown): boolean {
  const c = value as Partial<Codec> | null;
  return typeof c === 'object' && c !== null && typeof c.contentType === 'string' && c.contentType.length > 0 && typeof c.encode === 'function' && typeof c.decode === 'function';
}

function checkSchemaVersion(option: SchemaVersionOptions, fail: (m: string) => never): SchemaVersionOptions {
  if (typeof option !== 'object' || option === null) fail(`schemaVersion must be { version, name?, upcast? }, got ${JSON.stringify(option)}`);
  const { name, version, upcast } = option;
  if (!Number.isInteger(version) || version < 1) fail(`schemaVersion.version must be an integer >= 1, got ${JSON.stringify(version)}`);
  if (name !== undefined && (typeof name !== 'string' || name.length === 0 || /[\r\n]/.test(name))) {
    fail(`schemaVersion.name must be a non-empty single-line string, got ${JSON.stringify(name)}`);
  }
  for (const [from, step] of Object.entries(upcast ?? {})) {
    const n = Number(from);
    if (!Number.isInteger(n) || n < 1 || n >= version) fail(`schemaVersion.upcast keys are the versions upcast from, 1 to ${version - 1}; got ${JSON.stringify(from)}`);
    if (typeof step !== 'function') fail(`schemaVersion.upcast[${from}] must be a function (older payload) => next version's payload`);
  }
  return { name, version, upcast: { ...(upcast ?? {}) } };
}

function resolveInbox(defaults: Partial<OnEventOptions>, options: OnEventOptions, fail: (m: string) => never): boolean {
  if ((defaults as OnEventOptions).inbox !== undefined) fail('inbox is set per handler (it needs the handler\'s durable), not in the module defaults');
  const inbox = options.inbox;
  if (inbox === undefined || inbox === false) return false;
  if (inbox !== true) fail(`inbox must be a boolean, got ${JSON.stringify(inbox)}`);
  // Inbox rows are kept per consumer: an ephemeral consumer's name changes with every start,
  // so its rows would never match a redelivery after a restart.
  if (!options.durable) fail('inbox needs a durable consumer (its rows are kept per durable); add durable: \'<name>\'');
  if (options.delivery !== undefined && options.delivery !== 'exactly-once') {
    fail(`inbox is its own exactly-once delivery through the database; it cannot be combined with delivery: '${options.delivery}' (remove delivery, or the inbox)`);
  }
  return true;
}

function resolveCircuitBreaker(
  option: boolean | CircuitBreakerOptions | undefined,
  handler: { delivery: DeliveryMode; batch: boolean; partitioned: boolean },
  int: (value: number | undefined, fallback: number, name: string) => number,
  fail: (m: string) => never,
): ResolvedCircuitBreakerOptions | undefined {
  if (option === undefined || option === false) return undefined;
  if (option !== true && (typeof option !== 'object' || option === null)) {
    fail(`circuitBreaker must be true or { failures?, coolDownMs? }, got ${JSON.stringify(option)}`);
  }
  // At-most-once acks before the call: a failed message is gone, so there is nothing to hold.
  if (handler.delivery === 'at-most-once') fail("circuitBreaker needs a delivery that retries (at-least-once or exactly-once), not 'at-most-once'");
  if (handler.batch) fail('circuitBreaker is not supported on batch handlers (a batch settles its messages one by one after the call)');
  // Each partition is a consumer of its own; a breaker per partition, each pausing only its
  // partition, is not what a dependency outage calls for and is not built.
  if (handler.partitioned) fail('circuitBreaker is not supported with partitions yet (each partition is its own consumer; pausing one would leave the others burning attempts)');
  const given = option === true ? {} : option;
  const coolDownMs = int(given.coolDownMs, 30_000, 'circuitBreaker.coolDownMs');
  // The server's pause and the trial timer are wall-clock; shorter would just flap.
  if (coolDownMs < 1_000) fail(`circuitBreaker.coolDownMs must be at least 1000 ms, got ${coolDownMs}`);
  return { failures: int(given.failures, 5, 'circuitBreaker.failures'), coolDownMs };
}

const DEFAULT_RETRY: ResolvedRetryPolicy = { enabled: true, maxAttempts: 5, ...DEFAULT_BACKOFF };

function resolveRetry(
  retry: false | RetryOptions | undefined,
  int: (value: number | undefined, fallback: number, name: string) => number,
  fail: (m: string) => never,
): ResolvedRetryPolicy {
  if (retry === false) return { ...DEFAULT_RETRY, enabled: false, maxAttempts: 1 };
  if (retry === undefined) return DEFAULT_RETRY;
  if (typeof retry !== 'object' || retry === null) fail(`retry must be false or an object, got ${JSON.stringify(retry)}`);
  const backoff = retry.backoff ?? 'exponential';
  if (Array.isArray(backoff)) {
    if (backoff.length === 0 || backoff.some((d) => !Number.isInteger(d) || d < 0)) {
      fail(`retry.backoff list must hold integers >= 0 (milliseconds), got ${JSON.stringify(backoff)}`);
    }
  } else if (backoff !== 'exponential' && backoff !== 'fixed') {
    fail(`retry.backoff must be 'exponential', 'fixed' or a list of delays, got ${JSON.stringify(backoff)}`);
  }
  const initialDelayMs = int(retry.initialDelayMs, DEFAULT_RETRY.initialDelayMs, 'retry.initialDelayMs');
  const maxDelayMs = int(retry.maxDelayMs, Math.max(DEFAULT_RETRY.maxDelayMs, initialDelayMs), 'retry.maxDelayMs');
  if (maxDelayMs < initialDelayMs) fail(`retry.maxDelayMs (${maxDelayMs}) must be >= retry.initialDelayMs (${initialDelayMs})`);
  if (retry.jitter !== undefined && typeof retry.jitter !== 'boolean') fail('retry.jitter must be a boolean');
  return {
    enabled: true,
    maxAttempts: int(retry.maxAttempts, DEFAULT_RETRY.maxAttempts, 'retry.maxAttempts'),
    backoff: Array.isArray(backoff) ? [...backoff] : backoff,
    initialDelayMs,
    maxDelayMs,
    jitter: retry.jitter ?? true,
  };
}

function checkDeadLetter(dlq: unknown, fail: (m: string) => never): void {
  if (typeof dlq === 'boolean') return;
  const check = (subject: unknown, what: string) => {
    if (typeof subject !== 'string' || !/^[^\s*>]+$/.test(subject) || subject.split('.').some((t) => t === '')) {
      fail(`${what} must be a concrete subject, got ${JSON.stringify(subject)}`);
    }
  };
  if (typeof dlq === 'string') return check(dlq, 'dlq');
  if (dlq && typeof dlq === 'object') {
    const { subject, stream } = dlq as { subject?: unknown; stream?: unknown };
    if (subject !== undefined) check(subject, 'dlq.subject');
    if (stream !== undefined && (typeof stream !== 'string' || !/^[^\s.*>/\\]+$/.test(stream))) {
      fail(`dlq.stream must be a stream name, got ${JSON.stringify(stream)}`);
    }
    return;
  }
  fail(`dlq must be a boolean, a subject or { subject?, stream? }, got ${JSON.stringify(dlq)}`);
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

/** Messages one pull asks for when `prefetch` is not set (the benchmark's tuned floor uses it too). */
export function defaultPrefetch(concurrency: number): number {
  return Math.max(2 * concurrency, 32);
}
