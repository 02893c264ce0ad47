import type { Logger } from '@nestjs/common';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import { ApiCode, hasApiCode } from '../errors/jetstream-api-codes.js';
import { ScheduleRejectedError } from '../errors/schedule-errors.js';
import { scheduleHeader, scheduleSubject, type ScheduleDefinition, type ScheduleTiming } from '../options/schedule-definition.js';
import { requireServerFeature } from '../options/server-features.js';
import type { JetStreamPublisher } from '../producer/jetstream-publisher.js';
import { encodePayload } from '../serialization/codec.js';
import { getSchedule, type ScheduleInfo } from './schedule-store.js';

/**
 * Makes the server's schedules match the declared ones at startup, as streams are: a missing one
 * is created, a changed one replaced (and the change logged), an unchanged one left alone so its
 * next tick stays where it was. Instances starting together write at most once each: a write is
 * conditional on the schedule still being what this instance read.
 */
export class ScheduleProvisioner {
  constructor(
    private readonly connection: JetStreamConnection,
    private readonly publisher: JetStreamPublisher,
    private readonly logger: Logger,
  ) {}

  async ensureAll(schedules: readonly ScheduleDefinition[]): Promise<void> {
    for (const schedule of schedules) await this.ensure(schedule);
  }

  async ensure(def: ScheduleDefinition): Promise<void> {
    const where = `schedule "${def.name}" (JetStreamModule schedules)`;
    const { header, recurring } = scheduleHeader(def, where);
    requireServerFeature(this.connection, recurring ? 'scheduleRecurring' : 'scheduleAt', where);
    const stream = await this.streamOf(def);
    const data = encodePayload(def.payload);
    const existing = await getSchedule(this.connection, stream, def.name);
    const changes = existing ? differences(existing, def, header, data) : undefined;
    if (changes?.length === 0) {
      this.logger.debug?.(`Schedule "${def.name}" unchanged (${header} → ${def.subject})`);
      return;
    }
    try {
      await this.publisher.schedule(def.subject, data, {
        ...timingOf(def),
        name: def.name,
        expect: { lastSubjectSequence: existing?.seq ?? 0 },
      });
    } catch (err) {
      // Another instance starting at the same time wrote first: fine if it wrote the same.
      if (!hasApiCode((err as Error).cause, ApiCode.StreamWrongLastSequence)) throw err;
      const now = await getSchedule(this.connection, stream, def.name);
      if (!now || differences(now, def, header, data).length > 0) throw err;
      return;
    }
    // Servers that do not roll schedule subjects up by themselves keep the old one otherwise.
    await this.connection.jsm.streams.purge(stream, { filter: scheduleSubject(stream, def.name), keep: 1 });
    if (!existing) this.logger.log(`Created schedule "${def.name}" (${header} → ${def.subject}) in stream "${stream}"`);
    else this.logger.log(`Updated schedule "${def.name}" in stream "${stream}": ${changes!.join(', ')}`);
  }

  private async streamOf(def: ScheduleDefinition): Promise<string> {
    const { jsm } = this.connection;
    let stream: string;
    try {
      stream = await jsm.streams.find(def.subject);
    } catch (err) {
      if (hasApiCode(err, ApiCode.StreamNotFound)) {
        throw new ScheduleRejectedError(def.name, undefined, `no stream captures its subject "${def.subject}"; declare one with allow_msg_schedules: true`, { cause: err });
      }
      throw err;
    }
    const info = await jsm.streams.info(stream);
    if (!info.config.allow_msg_schedules) {
      throw new ScheduleRejectedError(def.name, undefined, `stream "${stream}", which captures "${def.subject}", does not allow schedules; set allow_msg_schedules: true on it`);
    }
    return stream;
  }
}

function timingOf(def: ScheduleDefinition): ScheduleTiming {
  if (def.at !== undefined) return { at: def.at };
  if (def.cron !== undefined) return def.timeZone !== undefined ? { cron: def.cron, timeZone: def.timeZone } : { cron: def.cron };
  return { every: def.every! };
}

function differences(stored: ScheduleInfo, def: ScheduleDefinition, header: string, data: Uint8Array): string[] {
  const out: string[] = [];
  if (stored.schedule !== header) out.push(`schedule "${stored.schedule}" → "${header}"`);
  if (stored.target !== def.subject) out.push(`subject "${stored.target}" → "${def.subject}"`);
  if ((stored.timeZone ?? '') !== (def.timeZone ?? '')) out.push(`time zone "${stored.timeZone ?? 'UTC'}" → "${def.timeZone ?? 'UTC'}"`);
  if (!sameBytes(stored.data, data)) out.push('payload');
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
