import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import type { Codec } from '../wire/codec.js';
import { assertFilterSubject } from './subject-validation.js';
import { checkScheduleDefinition, type ScheduleDefinition } from './schedule-definition.js';
import { resolveMetricsOptions, resolveTracingOptions } from './observability-options.js';
import { DEFAULT_IDEMPOTENCY_BUCKET, type JetStreamModuleOptions, type ResolvedModuleOptions, type StreamDefinition } from './jetstream-module-options.js';

const DEFAULT_SERVER = 'nats://127.0.0.1:4222';

export function resolveModuleOptions(
  options: JetStreamModuleOptions | undefined,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedModuleOptions {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new InvalidOptionsError('JetStreamModule options must be an object');
  }
  const opts = options ?? {};
  if (opts.defaults && 'durable' in opts.defaults) {
    // One durable shared by every handler would split each handler's messages between them.
    throw new InvalidOptionsError('defaults.durable is not allowed: a durable name belongs to one handler; set it on each @OnEvent');
  }
  if (opts.defaults && 'connection' in opts.defaults) {
    // Defaults belong to one connection's module; a handler's connection picks the module.
    throw new InvalidOptionsError('defaults.connection is not allowed: defaults apply to the handlers of this connection; set { connection } on each @OnEvent');
  }
  return {
    servers: resolveServers(opts.servers, env),
    connection: { ...(opts.connection ?? {}) },
    streams: (opts.streams ?? []).map((stream, i) => checkStream(stream, `streams[${i}]`)),
    schedules: checkSchedules(opts.schedules),
    defaults: { ...(opts.defaults ?? {}) },
    shutdownTimeoutMs: positiveInt(opts.shutdownTimeoutMs, 10_000, 'shutdownTimeoutMs', true),
    publishTimeoutMs: positiveInt(opts.publishTimeoutMs, 5_000, 'publishTimeoutMs'),
    validation: opts.validation === false ? false : { forbidUnknownValues: false, ...(opts.validation ?? {}) },
    transform: { ...(opts.transform ?? {}) },
    codec: opts.codec === undefined ? undefined : checkCodec(opts.codec, 'codec'),
    codecs: checkCodecs(opts.codecs),
    idempotency: {
      bucket: checkBucket(opts.idempotency?.bucket ?? DEFAULT_IDEMPOTENCY_BUCKET),
      ttlMs: positiveInt(opts.idempotency?.ttlMs, 24 * 60 * 60 * 1_000, 'idempotency.ttlMs'),
    },
    deadLetterMaxAgeMs: positiveInt(opts.deadLetterMaxAgeMs, 14 * 24 * 60 * 60 * 1_000, 'deadLetterMaxAgeMs'),
    publishRetries: positiveInt(opts.publishRetries, 2, 'publishRetries', true),
    metrics: resolveMetricsOptions(opts.metrics),
    tracing: resolveTracingOptions(opts.tracing),
  };
}

function checkSchedules(schedules: readonly ScheduleDefinition[] | undefined): ScheduleDefinition[] {
  if (schedules === undefined) return [];
  if (!Array.isArray(schedules)) throw new InvalidOptionsError('schedules must be a list of { name, subject, cron | every | at, payload }');
  const checked = schedules.map((s, i) => checkScheduleDefinition(s, `schedules[${i}]`));
  const names = checked.map((s) => s.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new InvalidOptionsError(`schedules: "${twice}" is declared twice; a schedule name is unique`);
  return checked;
}

function resolveServers(servers: string | string[] | undefined, env: NodeJS.ProcessEnv): string[] {
  const raw = servers ?? env.NATS_URL ?? DEFAULT_SERVER;
  const list = (Array.isArray(raw) ? raw : raw.split(','))
    .map((s) => (typeof s === 'string' ? s.trim() : s));
  if (list.length === 0 || list.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw new InvalidOptionsError(`servers must be a non-empty string or list of strings, got ${JSON.stringify(servers)}`);
  }
  return list;
}

function checkBucket(bucket: unknown): string {
  if (typeof bucket !== 'string' || !/^[\w-]+$/.test(bucket)) {
    throw new InvalidOptionsError(`idempotency.bucket must use letters, digits, "-" and "_" only, got ${JSON.stringify(bucket)}`);
  }
  return bucket;
}

/** A stream definition as the options give it; `where` says which option, for the error. */
export function checkStream(stream: StreamDefinition, where: string): StreamDefinition {
  if (!stream || typeof stream !== 'object') {
    throw new InvalidOptionsError(`${where} must be an object with a name and subjects`);
  }
  if (typeof stream.name !== 'string' || !/^[^\s.*>/\\]+$/.test(stream.name)) {
    throw new InvalidOptionsError(
      `${where}.name must be a non-empty name without whitespace, ".", "*", ">", "/" or "\\", got ${JSON.stringify(stream.name)}`,
    );
  }
  if (!Array.isArray(stream.subjects) || stream.subjects.length === 0) {
    throw new InvalidOptionsError(`Stream "${stream.name}": subjects must be a non-empty array`);
  }
  for (const subject of stream.subjects) {
    try {
      assertFilterSubject(subject);
    } catch (err) {
      throw new InvalidOptionsError(`Stream "${stream.name}": ${(err as Error).message}`);
    }
  }
  return stream;
}

export function positiveInt(
  value: number | undefined,
  fallback: number,
  name: string,
  allowZero = false,
): number {
  if (value === undefined) return fallback;
  const min = allowZero ? 0 : 1;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new InvalidOptionsError(`${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkCodec(codec: unknown, name: string): Codec {
  const c = codec as Partial<Codec> | null;
  if (typeof c !== 'object' || c === null || typeof c.contentType !== 'string' || !/^[\w.+-]+\/[\w.+-]+$/.test(c.contentType) || typeof c.encode !== 'function' || typeof c.decode !== 'function') {
    throw new InvalidOptionsError(`${name} must be a codec: { contentType: 'type/subtype', encode(value), decode(bytes) }`);
  }
  return c as Codec;
}

function checkCodecs(codecs: unknown): readonly Codec[] {
  if (codecs === undefined) return [];
  if (!Array.isArray(codecs)) throw new InvalidOptionsError('codecs must be a list of codecs');
  return codecs.map((codec, i) => checkCodec(codec, `codecs[${i}]`));
}
