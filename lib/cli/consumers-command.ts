import type { ConsumerInfo } from '@nats-io/jetstream';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { streamInfoOrUndefined } from '../provisioning/stream-info.js';
import { pauseConsumer, resumeConsumer } from '../provisioning/consumer-pause.js';
import { stringFlag, UsageError, type Flags, type OptionSpec } from './cli-args.js';
import type { CliSession } from './cli-connection.js';
import { printJson, printTable, shortTime, type CliIo } from './cli-output.js';

export const CONSUMERS_OPTIONS = {
  stream: { type: 'string' },
  until: { type: 'string' },
  for: { type: 'string' },
} as const satisfies OptionSpec;

export type ConsumersCommand =
  | { readonly action: 'list'; readonly stream: string | undefined }
  | { readonly action: 'pause'; readonly stream: string; readonly consumer: string; readonly until: Date }
  | { readonly action: 'resume'; readonly stream: string; readonly consumer: string };

export function parseConsumersCommand(positionals: readonly string[], flags: Flags, now = Date.now()): ConsumersCommand {
  const [action, ...rest] = positionals;
  if (action === 'pause' || action === 'resume') {
    const [stream, consumer, ...extra] = rest;
    if (!stream || !consumer) throw new UsageError(`consumers ${action} needs a stream and a consumer`, 'consumers');
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, 'consumers');
    if (action === 'resume') return { action, stream, consumer };
    return { action, stream, consumer, until: pauseUntil(flags, now) };
  }
  if (action !== undefined && action !== 'list') throw new UsageError(`unexpected argument "${action}"`, 'consumers');
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`, 'consumers');
  return { action: 'list', stream: stringFlag(flags, 'stream') };
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;
const DURATION = /^(\d+)(s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function pauseUntil(flags: Flags, now: number): Date {
  const until = stringFlag(flags, 'until');
  const span = stringFlag(flags, 'for');
  if ((until === undefined) === (span === undefined)) throw new UsageError('consumers pause needs exactly one of --until and --for', 'consumers');
  if (until !== undefined) {
    if (!ISO_TIME.test(until) || Number.isNaN(Date.parse(until))) {
      throw new UsageError(`--until must be an ISO 8601 time with a zone, e.g. 2025-06-01T12:00:00Z; got "${until}"`, 'consumers');
    }
    return new Date(until);
  }
  const m = DURATION.exec(span as string);
  if (!m) throw new UsageError(`--for must be a number and a unit (s, m, h, d), e.g. 30m; got "${span}"`, 'consumers');
  return new Date(now + Number(m[1]) * UNIT_MS[m[2]]);
}

export async function runConsumersCommand(command: ConsumersCommand, session: CliSession, io: CliIo, json: boolean): Promise<void> {
  if (command.action === 'list') return listConsumers(command.stream, session, io, json);
  const state =
    command.action === 'pause'
      ? await pauseConsumer(session.connection, command.stream, command.consumer, command.until)
      : await resumeConsumer(session.connection, command.stream, command.consumer);
  const out = { stream: state.stream, consumer: state.consumer, paused: state.paused, pauseUntil: state.pauseUntil?.toISOString() ?? null };
  if (json) return printJson(io, out);
  io.out(
    out.paused
      ? `Consumer ${out.consumer} on ${out.stream} paused until ${out.pauseUntil}: the server delivers nothing to it until then (resume with: consumers resume ${out.stream} ${out.consumer}).\n`
      : `Consumer ${out.consumer} on ${out.stream} is not paused: the server delivers to it.\n`,
  );
}

export interface ConsumerRow {
  readonly stream: string;
  readonly name: string;
  readonly durable: boolean;
  readonly filter: string[];
  /** Messages of the filter not delivered yet. */
  readonly pending: number;
  /** Delivered and not acknowledged yet (in handlers, or waiting for a retry). */
  readonly ackPending: number;
  /** pending + ackPending: what the consumer still has to finish. */
  readonly lag: number;
  readonly redelivered: number;
  readonly waiting: number;
  readonly deliveredSeq: number;
  readonly ackFloorSeq: number;
  readonly lastActive: string | null;
  readonly paused: boolean;
}

async function listConsumers(stream: string | undefined, session: CliSession, io: CliIo, json: boolean): Promise<void> {
  const { jsm } = session.connection;
  let streams: string[];
  if (stream) {
    if (!(await streamInfoOrUndefined(jsm, stream))) throw new InvalidOptionsError(`Stream "${stream}" does not exist`);
    streams = [stream];
  } else {
    streams = [];
    for await (const name of jsm.streams.names()) streams.push(name);
    streams.sort();
  }
  const rows: ConsumerRow[] = [];
  for (const name of streams) {
    const infos: ConsumerInfo[] = [];
    for await (const info of jsm.consumers.list(name)) infos.push(info);
    infos.sort((a, b) => a.name.localeCompare(b.name));
    rows.push(...infos.map(toRow));
  }
  if (json) return printJson(io, rows);
  if (rows.length === 0) return io.out(stream ? `No consumers on stream ${stream}.\n` : 'No consumers.\n');
  printTable(
    io,
    ['STREAM', 'CONSUMER', 'FILTER', 'PENDING', 'ACK PENDING', 'REDELIVERED', 'LAST ACTIVE'],
    rows.map((r) => [
      r.stream,
      `${r.durable ? r.name : `${r.name} (ephemeral)`}${r.paused ? ' (paused)' : ''}`,
      r.filter.join(','),
      r.pending,
      r.ackPending,
      r.redelivered,
      shortTime(r.lastActive ?? undefined),
    ]),
  );
}

function toRow(info: ConsumerInfo): ConsumerRow {
  const filter = info.config.filter_subjects?.length ? info.config.filter_subjects : info.config.filter_subject ? [info.config.filter_subject] : [];
  return {
    stream: info.stream_name,
    name: info.name,
    durable: Boolean(info.config.durable_name),
    filter,
    pending: info.num_pending,
    ackPending: info.num_ack_pending,
    lag: info.num_pending + info.num_ack_pending,
    redelivered: info.num_redelivered,
    waiting: info.num_waiting,
    deliveredSeq: info.delivered.stream_seq,
    ackFloorSeq: info.ack_floor.stream_seq,
    lastActive: lastActive(info.delivered.last_active),
    paused: Boolean((info as { paused?: boolean }).paused),
  };
}

// The client types it as nanoseconds, but the server sends an RFC 3339 time (absent or year 1
// when nothing was delivered yet).
function lastActive(raw: unknown): string | null {
  if (typeof raw !== 'string') return null;
  const time = Date.parse(raw);
  return Number.isNaN(time) || time <= 0 ? null : raw;
}
