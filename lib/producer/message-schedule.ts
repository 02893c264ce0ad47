import { nuid } from '@nats-io/transport-node';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import { NoStreamForSubjectError } from '../errors/jetstream-errors.js';
import { ApiCode, hasApiCode } from '../errors/jetstream-api-codes.js';
import { ScheduleRejectedError } from '../errors/schedule-errors.js';
import {
  assertScheduleName,
  scheduleHeader,
  scheduleSubject,
  scheduleSubjects,
  type ScheduleTiming,
} from '../options/schedule-definition.js';
import { requireServerFeature } from '../options/server-features.js';
import type { PublishOptions, PublishResult } from './jetstream-publisher.js';

import { ScheduleHeaders } from '../wire/schedule-headers.js';

export { ScheduleHeaders };

export type ScheduleOptions = ScheduleTiming &
  Omit<PublishOptions, 'ttl'> & {
    /**
     * Names the schedule (letters, digits, `-`, `_`), unique within its stream: scheduling the
     * same name again replaces it. Default: `at-<unique id>`.
     */
    name?: string;
  };

export interface ScheduleResult extends PublishResult {
  readonly name: string;
  /** Where the schedule is stored: `_schedules.<stream>.<name>`. */
  readonly scheduleSubject: string;
  /** Where it publishes when it fires. */
  readonly target: string;
}

type Publish = (subject: string, payload: unknown, options: PublishOptions) => Promise<PublishResult>;

/**
 * Stores a schedule in the stream that captures `target`; the server publishes `payload` to
 * `target` when it fires. Nothing runs in the app: the schedule outlives app and broker restarts.
 */
export async function publishSchedule(
  connection: JetStreamConnection,
  publish: Publish,
  target: string,
  payload: unknown,
  options: ScheduleOptions,
): Promise<ScheduleResult> {
  const { at, cron, every, timeZone, name: givenName, headers, ...publishOptions } = options ?? ({} as ScheduleOptions);
  const timing = { at, cron, every, timeZone } as ScheduleTiming;
  const where = `schedule to "${target}"`;
  const { header, recurring } = scheduleHeader(timing, where);
  requireServerFeature(connection, recurring ? 'scheduleRecurring' : 'scheduleAt', where);
  const name = givenName ?? `at-${nuid.next()}`;
  assertScheduleName(name, where);
  let stream: string;
  try {
    stream = await connection.jsm.streams.find(target);
  } catch (err) {
    if (hasApiCode(err, ApiCode.StreamNotFound)) throw new NoStreamForSubjectError(target, err);
    throw err;
  }
  const subject = scheduleSubject(stream, name);
  const scheduleHeaders: Record<string, string | readonly string[]> = { ...headers, [ScheduleHeaders.Schedule]: header, [ScheduleHeaders.Target]: target };
  if (timeZone !== undefined) scheduleHeaders[ScheduleHeaders.TimeZone] = timeZone;
  let result: PublishResult;
  try {
    result = await publish(subject, payload, { ...publishOptions, headers: scheduleHeaders });
  } catch (err) {
    throw explainScheduleError(err, name, stream, target, header);
  }
  return { ...result, name, scheduleSubject: subject, target };
}

function explainScheduleError(err: unknown, name: string, stream: string, target: string, header: string): unknown {
  const cause = (err as Error)?.cause ?? err;
  if (err instanceof NoStreamForSubjectError) {
    return new ScheduleRejectedError(
      name,
      undefined,
      `stream "${stream}" captures "${target}" but not "${scheduleSubjects(stream)}", where its schedules are stored; add that subject to the stream (streams declared with allow_msg_schedules: true get it at startup)`,
      { cause: err },
    );
  }
  if (hasApiCode(cause, ApiCode.SchedulePatternInvalid)) {
    return new ScheduleRejectedError(name, ApiCode.SchedulePatternInvalid, `nats-server cannot parse "${header}" (cron has 6 fields, seconds first; @every needs at least 1s)`, { cause: err });
  }
  if (hasApiCode(cause, ApiCode.ScheduleTargetInvalid)) {
    return new ScheduleRejectedError(name, ApiCode.ScheduleTargetInvalid, `target "${target}" is not a subject of stream "${stream}" it may publish to (no wildcards, not a schedule subject)`, { cause: err });
  }
  return err;
}
