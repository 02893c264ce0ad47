import type { ConsumerInfo } from '@nats-io/jetstream';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { streamInfoOrUndefined } from '../provisioning/stream-info.js';
import { stringFlag, UsageError, type Flags, type OptionSpec } from './cli-args.js';
import type { CliSession } from './cli-connection.js';
import { printJson, printTable, shortTime, type CliIo } from './cli-output.js';

export const CONSUMERS_OPTIONS = {
  stream: { type: 'string' },
} as const satisfies OptionSpec;

export interface ConsumersCommand {
  readonly stream: string | undefined;
}

export function parseConsumersCommand(positionals: readonly string[], flags: Flags): ConsumersCommand {
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`, 'consumers');
  return { stream: stringFlag(flags, 'stream') };
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

export async function runConsumersCommand(command: ConsumersCommand, session: CliSession, io: CliIo, json: boolean): Promise<void> {
  const { jsm } = session.connection;
  let streams: string[];
  if (command.stream) {
    if (!(await streamInfoOrUndefined(jsm, command.stream))) throw new InvalidOptionsError(`Stream "${command.stream}" does not exist`);
    streams = [command.stream];
  } else {
    streams = [];
    for await (const name of jsm.streams.names()) streams.push(name);
    streams.sort();
  }
  const rows: ConsumerRow[] = [];
  for (const stream of streams) {
    const infos: ConsumerInfo[] = [];
    for await (const info of jsm.consumers.list(stream)) infos.push(info);
    infos.sort((a, b) => a.name.localeCompare(b.name));
    rows.push(...infos.map(toRow));
  }
  if (json) return printJson(io, rows);
  if (rows.length === 0) return io.out(command.stream ? `No consumers on stream ${command.stream}.\n` : 'No consumers.\n');
  printTable(
    io,
    ['STREAM', 'CONSUMER', 'FILTER', 'PENDING', 'ACK PENDING', 'REDELIVERED', 'LAST ACTIVE'],
    rows.map((r) => [
      r.stream,
      r.durable ? r.name : `${r.name} (ephemeral)`,
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
