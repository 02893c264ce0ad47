import { replayConsumer, type ReplayStart } from '../provisioning/consumer-replay.js';
import { intArg, stringFlag, UsageError, type Flags, type OptionSpec } from './cli-args.js';
import type { CliSession } from './cli-connection.js';
import { printJson, type CliIo } from './cli-output.js';

export const REPLAY_OPTIONS = {
  'from-seq': { type: 'string' },
  'from-time': { type: 'string' },
  recreate: { type: 'boolean' },
  'idempotency-bucket': { type: 'string' },
  yes: { type: 'boolean' },
} as const satisfies OptionSpec;

export interface ReplayCommand {
  readonly stream: string;
  /** The consumer (a handler's durable name) to move back. */
  readonly consumer: string;
  readonly from: ReplayStart;
  readonly recreate: boolean;
  readonly idempotencyBucket?: string;
}

// RFC 3339 / ISO 8601 with a date and a time: a bare date or a locale string is too easy to misread.
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

export function parseReplayCommand(positionals: readonly string[], flags: Flags): ReplayCommand {
  const [stream, consumer, ...extra] = positionals;
  if (!stream || !consumer) throw new UsageError('replay needs a stream and a consumer', 'replay');
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, 'replay');
  const seqText = stringFlag(flags, 'from-seq');
  const timeText = stringFlag(flags, 'from-time');
  if ((seqText === undefined) === (timeText === undefined)) throw new UsageError('give exactly one of --from-seq and --from-time', 'replay');
  let from: ReplayStart;
  if (seqText !== undefined) {
    from = { seq: intArg(seqText, '--from-seq', 'replay') as number };
  } else {
    if (!ISO_TIME.test(timeText as string) || Number.isNaN(Date.parse(timeText as string))) {
      throw new UsageError(`--from-time must be an ISO 8601 time with a zone, e.g. 2025-06-01T12:00:00Z; got "${timeText}"`, 'replay');
    }
    from = { time: new Date(timeText as string) };
  }
  if (flags.yes !== true) {
    throw new UsageError(`replay re-delivers messages to the handlers of "${consumer}"; add --yes to confirm`, 'replay');
  }
  return { stream, consumer, from, recreate: flags.recreate === true, idempotencyBucket: stringFlag(flags, 'idempotency-bucket') };
}

export async function runReplayCommand(command: ReplayCommand, session: CliSession, io: CliIo, json: boolean): Promise<void> {
  const result = await replayConsumer(session.connection, command.stream, command.consumer, command.from, {
    recreate: command.recreate,
    idempotencyBucket: command.idempotencyBucket,
  });
  // The CLI names it "consumer" everywhere (flag, column, JSON), whatever the library calls it.
  const { method, stream, durable: consumer, startSeq, previousAckFloor, pending } = result;
  if (json) return printJson(io, { method, stream, consumer, startSeq, previousAckFloor, pending });
  const how =
    result.method === 'reset'
      ? 'reset in place'
      : 'deleted and recreated with deliver policy by_start_sequence; set deliverPolicy: { startSequence: ' +
        `${result.startSeq} } on its handler (or delete the consumer again) before the app starts, or it will report config drift`;
  io.out(
    `Consumer ${consumer} on stream ${result.stream} now delivers from seq ${result.startSeq} (was acknowledged up to ${result.previousAckFloor}): ${how}.\n` +
      `${result.pending} message${result.pending === 1 ? '' : 's'} pending.\n`,
  );
}
