import type { DeadLetter, DeadLetterFilter } from '../dead-letters/dead-letter.service.js';
import { DEFAULT_DEAD_LETTER_STREAM } from '../dead-letters/dead-letter-target.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { streamInfoOrUndefined } from '../provisioning/stream-info.js';
import { msgpackCodec } from '../serialization/msgpack-codec.js';
import { CONTENT_TYPE_HEADER } from '../wire/codec.js';
import { intArg, stringFlag, UsageError, type Flags, type OptionSpec } from './cli-args.js';
import type { CliSession } from './cli-connection.js';
import { printFields, printJson, printTable, shortTime, truncate, type CliIo } from './cli-output.js';

export const DLQ_OPTIONS = {
  stream: { type: 'string' },
  consumer: { type: 'string' },
  // The old name of --consumer, still accepted (with a warning) so scripts keep working.
  durable: { type: 'string' },
  'original-stream': { type: 'string' },
  subject: { type: 'string' },
  limit: { type: 'string' },
  all: { type: 'boolean' },
  yes: { type: 'boolean' },
} as const satisfies OptionSpec;

const ACTIONS = ['list', 'show', 'redrive', 'delete', 'purge'] as const;
type Action = (typeof ACTIONS)[number];

/** Checked before connecting, so a usage mistake never waits on the network. */
export interface DlqCommand {
  readonly action: Action;
  readonly seq?: number;
  readonly stream?: string;
  readonly filter: DeadLetterFilter;
  readonly all: boolean;
}

export function parseDlqCommand(positionals: readonly string[], flags: Flags, io: Pick<CliIo, 'err'>): DlqCommand {
  const [action, seqText, ...extra] = positionals;
  if (!ACTIONS.includes(action as Action)) {
    throw new UsageError(action ? `unknown dlq action "${action}"` : 'dlq needs an action: list, show, redrive, delete or purge', 'dlq');
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, 'dlq');
  const stream = stringFlag(flags, 'stream');
  const filter: DeadLetterFilter = {
    stream,
    consumer: consumerFlag(flags, io),
    originalStream: stringFlag(flags, 'original-stream'),
    originalSubject: stringFlag(flags, 'subject'),
    limit: intArg(stringFlag(flags, 'limit'), '--limit', 'dlq'),
  };
  const all = flags.all === true;
  const needsSeq = action === 'show' || action === 'delete' || (action === 'redrive' && !all);
  if (action === 'redrive' && all && seqText !== undefined) throw new UsageError('give a sequence or --all, not both', 'dlq');
  if (needsSeq && seqText === undefined) throw new UsageError(`dlq ${action} needs the dead letter's sequence${action === 'redrive' ? ' (or --all)' : ''}`, 'dlq');
  if (!needsSeq && seqText !== undefined) throw new UsageError(`dlq ${action} takes no sequence`, 'dlq');
  if (action === 'purge' && flags.yes !== true) {
    throw new UsageError('dlq purge deletes dead letters for good; add --yes to confirm', 'dlq');
  }
  return { action: action as Action, seq: intArg(seqText, 'sequence', 'dlq'), stream, filter, all };
}

/** `--consumer`, or its deprecated spelling `--durable`: one word for the consumer everywhere (the filter, the CONSUMER column). */
function consumerFlag(flags: Flags, io: Pick<CliIo, 'err'>): string | undefined {
  const consumer = stringFlag(flags, 'consumer');
  const durable = stringFlag(flags, 'durable');
  if (durable === undefined) return consumer;
  if (consumer !== undefined) throw new UsageError('--durable is the old name of --consumer; give --consumer only', 'dlq');
  io.err('nestjs-jetstream: warning: --durable is deprecated, use --consumer\n');
  return durable;
}

export async function runDlqCommand(command: DlqCommand, session: CliSession, io: CliIo, json: boolean): Promise<void> {
  const { deadLetters } = session;
  // The server's own answer ("stream not found") does not say which stream was looked for.
  const stream = command.stream ?? DEFAULT_DEAD_LETTER_STREAM;
  if (!(await streamInfoOrUndefined(session.connection.jsm, stream))) {
    throw new InvalidOptionsError(`dead-letter stream "${stream}" does not exist${command.stream ? '' : ' (choose another with --stream)'}`);
  }
  switch (command.action) {
    case 'list': {
      const letters = await deadLetters.list(command.filter);
      if (json) return printJson(io, letters.map((l) => toJson(l)));
      if (letters.length === 0) return io.out('No dead letters.\n');
      return printTable(
        io,
        ['SEQ', 'FAILED AT', 'SUBJECT', 'FROM', 'CONSUMER', 'ATTEMPTS', 'REASON', 'ERROR'],
        letters.map((l) => [
          l.seq,
          shortTime(l.failedAt),
          l.originalSubject,
          l.originalStream ? `${l.originalStream}:${l.originalSequence}` : undefined,
          l.consumer,
          l.attempts,
          l.reason,
          truncate([l.error.name, l.error.message].filter(Boolean).join(': '), 60),
        ]),
      );
    }
    case 'show': {
      const letter = await deadLetters.peek(command.seq as number, command.stream);
      if (!letter) throw new Error(`dead letter ${command.stream ?? 'DLQ'} seq ${command.seq} does not exist`);
      const body = toJson(letter, await decodeForDisplay(letter));
      if (json) return printJson(io, body);
      printFields(io, [
        ['Seq', letter.seq],
        ['Dead-letter stream', letter.deadLetterStream],
        ['Subject', letter.subject],
        ['Original subject', letter.originalSubject],
        ['Original stream', letter.originalStream],
        ['Original sequence', letter.originalSequence],
        ['Original msg-id', letter.originalMsgId],
        ['Consumer', letter.consumer],
        ['Handler', letter.handler],
        ['Attempts', letter.attempts],
        ['Reason', letter.reason],
        ['Error', [letter.error.name, letter.error.message].filter(Boolean).join(': ')],
        ['Failed at', letter.failedAt?.toISOString()],
        ['Redrives', letter.redriveCount],
      ]);
      io.out('Headers:\n');
      for (const [key, values] of Object.entries(letter.headers)) for (const v of values) io.out(`  ${key}: ${v}\n`);
      if (body.contentType !== undefined && body.payload !== null && body.payloadBase64 !== undefined) {
        io.out(`Payload (${String(body.contentType)}, ${letter.data.length} bytes, shown as JSON):\n${String(body.payload)}\n`);
      } else {
        io.out(body.payload !== null ? `Payload:\n${String(body.payload)}\n` : `Payload (base64, not UTF-8${body.contentType ? `, ${String(body.contentType)}` : ''}):\n${String(body.payloadBase64)}\n`);
      }
      return;
    }
    case 'redrive': {
      if (command.all) {
        const count = await deadLetters.redriveAll(command.filter);
        return json ? printJson(io, { redriven: count }) : io.out(`Redrove ${count} dead letter${count === 1 ? '' : 's'}.\n`);
      }
      const letter = await deadLetters.peek(command.seq as number, command.stream);
      if (!letter) throw new Error(`dead letter ${command.stream ?? 'DLQ'} seq ${command.seq} does not exist`);
      const result = await deadLetters.redrive(letter.seq, command.stream);
      if (json) return printJson(io, { deadLetterSeq: letter.seq, subject: letter.originalSubject, stream: result.stream, seq: result.seq, duplicate: result.duplicate });
      return io.out(`Redrove dead letter ${letter.seq} to ${letter.originalSubject} (stream ${result.stream} seq ${result.seq}).\n`);
    }
    case 'delete': {
      const deleted = await deadLetters.delete(command.seq as number, command.stream);
      if (!deleted) throw new Error(`dead letter ${command.stream ?? 'DLQ'} seq ${command.seq} does not exist`);
      return json ? printJson(io, { deleted: command.seq }) : io.out(`Deleted dead letter ${command.seq}.\n`);
    }
    case 'purge': {
      const purged = await deadLetters.purge(command.filter);
      return json ? printJson(io, { purged }) : io.out(`Purged ${purged} dead letter${purged === 1 ? '' : 's'}.\n`);
    }
  }
}

/**
 * A binary payload decoded for people to read: msgpack shown as JSON. Undefined for JSON and
 * unknown content types, or when the codec's peer is missing (the bytes are shown as base64).
 */
async function decodeForDisplay(letter: DeadLetter): Promise<{ readonly contentType: string; readonly json: string } | undefined> {
  const header = Object.keys(letter.headers).find((key) => key.toLowerCase() === CONTENT_TYPE_HEADER.toLowerCase());
  const contentType = header ? letter.headers[header][0] : undefined;
  if (contentType === undefined || !contentType.toLowerCase().startsWith(msgpackCodec.contentType)) return undefined;
  try {
    await msgpackCodec.prepare!();
    return { contentType, json: JSON.stringify(msgpackCodec.decode(letter.data), displayValue, 2) };
  } catch {
    return undefined;
  }
}

// Bytes inside a msgpack payload (bin fields) would print as an object of indices.
function displayValue(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return { base64: Buffer.from(value).toString('base64') };
  return typeof value === 'bigint' ? value.toString() : value;
}

/**
 * A dead letter as JSON: the payload as text when it is UTF-8, else base64. A msgpack payload is
 * shown decoded (as JSON text), its bytes kept in base64 beside it.
 */
function toJson(letter: DeadLetter, decoded?: { readonly contentType: string; readonly json: string }): Record<string, unknown> {
  let payload: string | null = null;
  if (decoded) {
    payload = decoded.json;
  } else {
    try {
      payload = new TextDecoder('utf-8', { fatal: true }).decode(letter.data);
    } catch {
      payload = null;
    }
  }
  return {
    seq: letter.seq,
    deadLetterStream: letter.deadLetterStream,
    subject: letter.subject,
    originalSubject: letter.originalSubject,
    originalStream: letter.originalStream,
    originalSequence: letter.originalSequence,
    originalMsgId: letter.originalMsgId ?? null,
    consumer: letter.consumer,
    handler: letter.handler ?? null,
    attempts: letter.attempts,
    reason: letter.reason,
    error: letter.error,
    failedAt: letter.failedAt?.toISOString() ?? null,
    redriveCount: letter.redriveCount,
    headers: letter.headers,
    ...(decoded ? { contentType: decoded.contentType } : {}),
    payload,
    ...(payload === null || decoded ? { payloadBase64: Buffer.from(letter.data).toString('base64') } : {}),
  };
}
