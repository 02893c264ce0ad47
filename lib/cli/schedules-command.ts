import { cancelSchedule, listSchedules } from '../scheduling/schedule-store.js';
import { stringFlag, UsageError, type Flags, type OptionSpec } from './cli-args.js';
import type { CliSession } from './cli-connection.js';
import { printJson, printTable, shortTime, truncate, type CliIo } from './cli-output.js';

export const SCHEDULES_OPTIONS = {
  stream: { type: 'string' },
  yes: { type: 'boolean' },
} as const satisfies OptionSpec;

export type SchedulesCommand =
  | { readonly action: 'list'; readonly stream: string | undefined }
  | { readonly action: 'cancel'; readonly stream: string; readonly name: string };

export function parseSchedulesCommand(positionals: readonly string[], flags: Flags): SchedulesCommand {
  const [action, ...rest] = positionals;
  if (action === 'cancel') {
    const [stream, name, ...extra] = rest;
    if (!stream || !name) throw new UsageError('schedules cancel needs a stream and a schedule name', 'schedules');
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, 'schedules');
    if (flags.yes !== true) throw new UsageError(`cancelling removes schedule "${name}" for good (a declared one comes back when its app starts); add --yes to confirm`, 'schedules');
    return { action, stream, name };
  }
  if (action !== undefined && action !== 'list') throw new UsageError(`unknown schedules action "${action}"`, 'schedules');
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`, 'schedules');
  return { action: 'list', stream: stringFlag(flags, 'stream') };
}

export async function runSchedulesCommand(command: SchedulesCommand, session: CliSession, io: CliIo, json: boolean): Promise<void> {
  if (command.action === 'cancel') {
    const cancelled = await cancelSchedule(session.connection, command.stream, command.name);
    if (json) return printJson(io, { stream: command.stream, name: command.name, cancelled });
    io.out(cancelled ? `Cancelled schedule ${command.name} on ${command.stream}.\n` : `No schedule ${command.name} on ${command.stream} (a one-shot that fired is gone).\n`);
    return;
  }
  const schedules = await listSchedules(session.connection, command.stream);
  if (json) {
    return printJson(
      io,
      schedules.map((s) => ({ stream: s.stream, name: s.name, schedule: s.schedule, timeZone: s.timeZone ?? null, target: s.target, seq: s.seq, storedAt: s.storedAt.toISOString(), payload: s.payload ?? null })),
    );
  }
  if (schedules.length === 0) return io.out(command.stream ? `No schedules on stream ${command.stream}.\n` : 'No schedules.\n');
  printTable(
    io,
    ['STREAM', 'NAME', 'SCHEDULE', 'TARGET', 'STORED', 'PAYLOAD'],
    schedules.map((s) => [s.stream, s.name, s.timeZone ? `${s.schedule} (${s.timeZone})` : s.schedule, s.target, shortTime(s.storedAt), truncate(new TextDecoder().decode(s.data), 40)]),
  );
}
