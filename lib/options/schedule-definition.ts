import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { assertPublishSubject } from './subject-validation.js';

/**
 * When a schedule fires (nats-server message schedules, ADR-51): exactly one of
 * - `at`: once, at that time (nats-server 2.12+);
 * - `cron`: six fields, seconds first (`'0 0 6 * * *'` is 06:00:00 daily), or a predefined
 *   `@daily`, `@hourly`, ... (2.14+), in `timeZone` (IANA name) when given, else UTC;
 * - `every`: a fixed interval, milliseconds (at least 1000) or a Go duration `'30s'`, `'5m'` (2.14+).
 */
export type ScheduleTiming =
  | { readonly at: Date; readonly cron?: never; readonly every?: never; readonly timeZone?: never }
  | { readonly cron: string; readonly timeZone?: string; readonly at?: never; readonly every?: never }
  | { readonly every: number | string; readonly at?: never; readonly cron?: never; readonly timeZone?: never };

/** A recurring schedule declared in `forRoot({ schedules })`: created or updated at startup. */
export type ScheduleDefinition = {
  /** Unique within its stream; letters, digits, `-` and `_`. It names the schedule to list or cancel. */
  readonly name: string;
  /** Where each firing publishes `payload`: an ordinary `@OnEvent` subject of a stream that allows schedules. */
  readonly subject: string;
  /** The message each firing publishes, encoded like a publish's payload. */
  readonly payload?: unknown;
} & ScheduleTiming;

/** Where schedules live: `_schedules.<stream>.<name>`, a subject the schedule's own stream captures. */
export const SCHEDULE_SUBJECT_PREFIX = '_schedules';

export function scheduleSubject(stream: string, name: string): string {
  return `${SCHEDULE_SUBJECT_PREFIX}.${stream}.${name}`;
}

/** The subject a stream that allows schedules captures for them (added to declared streams). */
export function scheduleSubjects(stream: string): string {
  return `${SCHEDULE_SUBJECT_PREFIX}.${stream}.>`;
}

export function assertScheduleName(name: unknown, where: string): asserts name is string {
  if (typeof name !== 'string' || !/^[\w-]{1,200}$/.test(name)) {
    throw new InvalidOptionsError(`${where}: a schedule name uses letters, digits, "-" and "_" only, got ${JSON.stringify(name)}`);
  }
}

/** The `Nats-Schedule` header value of a timing, checked as far as the client can. */
export function scheduleHeader(timing: ScheduleTiming, where: string): { header: string; recurring: boolean } {
  const set = (['at', 'cron', 'every'] as const).filter((k) => timing[k] !== undefined);
  if (set.length !== 1) throw new InvalidOptionsError(`${where}: give exactly one of at, cron and every, got ${set.length ? set.join(', ') : 'none'}`);
  if (timing.timeZone !== undefined && timing.cron === undefined) throw new InvalidOptionsError(`${where}: timeZone applies to cron schedules only`);
  if (timing.at !== undefined) {
    if (!(timing.at instanceof Date) || Number.isNaN(timing.at.getTime())) throw new InvalidOptionsError(`${where}: at must be a valid Date`);
    // The server reads whole seconds in UTC (`@at 2026-01-01T00:00:00Z`): round up, never fire early.
    const whole = new Date(Math.ceil(timing.at.getTime() / 1_000) * 1_000);
    return { header: `@at ${whole.toISOString().replace(/\.\d{3}Z$/, 'Z')}`, recurring: false };
  }
  if (timing.cron !== undefined) {
    const cron = String(timing.cron).trim();
    if (!cron.startsWith('@') && cron.split(/\s+/).length !== 6) {
      throw new InvalidOptionsError(
        `${where}: cron ${JSON.stringify(timing.cron)} has ${cron.split(/\s+/).filter(Boolean).length} fields; nats-server cron has 6, seconds first ("0 0 6 * * *" is 06:00:00 every day)`,
      );
    }
    return { header: cron, recurring: true };
  }
  const every = timing.every!;
  if (typeof every === 'number') {
    if (!Number.isInteger(every) || every < 1_000) throw new InvalidOptionsError(`${where}: every must be whole milliseconds, at least 1000, got ${every}`);
    return { header: `@every ${every % 1_000 === 0 ? `${every / 1_000}s` : `${every}ms`}`, recurring: true };
  }
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(every)) throw new InvalidOptionsError(`${where}: every ${JSON.stringify(every)} is not a duration such as '30s' or '5m'`);
  return { header: `@every ${every}`, recurring: true };
}

/** Checks a declared schedule at option resolution; the server checks the rest at startup. */
export function checkScheduleDefinition(def: ScheduleDefinition, where: string): ScheduleDefinition {
  if (!def || typeof def !== 'object') throw new InvalidOptionsError(`${where}: a schedule must be { name, subject, cron | every | at, payload }`);
  assertScheduleName(def.name, where);
  try {
    assertPublishSubject(def.subject);
  } catch (err) {
    throw new InvalidOptionsError(`${where} (schedule "${def.name}"): ${(err as Error).message}`);
  }
  scheduleHeader(def, `${where} (schedule "${def.name}")`);
  return def;
}
