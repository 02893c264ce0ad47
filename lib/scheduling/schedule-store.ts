import type { StoredMsg } from '@nats-io/jetstream';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { assertScheduleName, SCHEDULE_SUBJECT_PREFIX, scheduleSubject, scheduleSubjects } from '../options/schedule-definition.js';
import { requireServerFeature } from '../options/server-features.js';
import { ScheduleHeaders } from '../producer/message-schedule.js';
import { streamInfoOrUndefined } from '../provisioning/stream-info.js';
import { decodeJson } from '../serialization/codec.js';

/** A schedule as the server stores it. */
export interface ScheduleInfo {
  readonly name: string;
  readonly stream: string;
  /** `_schedules.<stream>.<name>`. */
  readonly scheduleSubject: string;
  /** Where it publishes when it fires. */
  readonly target: string;
  /** The `Nats-Schedule` value: `@at <time>`, a cron expression or `@every <interval>`. */
  readonly schedule: string;
  readonly timeZone: string | undefined;
  /** The payload each firing publishes, as stored. */
  readonly data: Uint8Array;
  /** The payload decoded as JSON; undefined when it is not JSON. */
  readonly payload: unknown;
  readonly seq: number;
  /** When the schedule was stored (created, or last replaced). */
  readonly storedAt: Date;
}

/** Schedules of one stream, or of every stream that allows them; ordered by stream, then name. */
export async function listSchedules(connection: JetStreamConnection, stream?: string): Promise<ScheduleInfo[]> {
  requireServerFeature(connection, 'scheduleAt', 'list schedules');
  const { jsm } = connection;
  const streams: string[] = [];
  if (stream !== undefined) {
    if (!(await streamInfoOrUndefined(jsm, stream))) throw new InvalidOptionsError(`Stream "${stream}" does not exist`);
    streams.push(stream);
  } else {
    for await (const info of jsm.streams.list()) if (info.config.allow_msg_schedules) streams.push(info.config.name);
    streams.sort();
  }
  const out: ScheduleInfo[] = [];
  for (const name of streams) {
    const info = await jsm.streams.info(name, { subjects_filter: scheduleSubjects(name) });
    const subjects = Object.keys(info.state.subjects ?? {}).sort();
    for (const subject of subjects) {
      const stored = await lastOn(connection, name, subject);
      if (stored) out.push(stored);
    }
  }
  return out;
}

/** One schedule, or undefined when the stream holds none of that name (fired one-shots are gone). */
export async function getSchedule(connection: JetStreamConnection, stream: string, name: string): Promise<ScheduleInfo | undefined> {
  requireServerFeature(connection, 'scheduleAt', `read schedule "${name}"`);
  assertScheduleName(name, 'getSchedule');
  return lastOn(connection, stream, scheduleSubject(stream, name));
}

/** Removes a schedule so it never fires again; false when there was none of that name. */
export async function cancelSchedule(connection: JetStreamConnection, stream: string, name: string): Promise<boolean> {
  requireServerFeature(connection, 'scheduleAt', `cancel schedule "${name}"`);
  assertScheduleName(name, 'cancelSchedule');
  const r = await connection.jsm.streams.purge(stream, { filter: scheduleSubject(stream, name) });
  return r.purged > 0;
}

async function lastOn(connection: JetStreamConnection, stream: string, subject: string): Promise<ScheduleInfo | undefined> {
  // getMessage answers null (not an error) when the subject holds nothing.
  const m = await connection.jsm.streams.getMessage(stream, { last_by_subj: subject });
  return m ? toInfo(stream, m) : undefined;
}

export function toInfo(stream: string, m: StoredMsg): ScheduleInfo {
  const prefix = `${SCHEDULE_SUBJECT_PREFIX}.${stream}.`;
  let payload: unknown;
  try {
    payload = m.data.length ? decodeJson(m.data) : undefined;
  } catch {
    payload = undefined;
  }
  return {
    name: m.subject.startsWith(prefix) ? m.subject.slice(prefix.length) : m.subject,
    stream,
    scheduleSubject: m.subject,
    target: m.header.get(ScheduleHeaders.Target),
    schedule: m.header.get(ScheduleHeaders.Schedule),
    timeZone: m.header.get(ScheduleHeaders.TimeZone) || undefined,
    data: m.data,
    payload,
    seq: m.seq,
    storedAt: m.time,
  };
}
