import type { DeadLetterOption, ResolvedDeadLetter } from '../decorators/on-event-options.js';

/** Why a message leaves the normal flow for the dead-letter stream. */
export type DeadLetterReason =
  | 'exhausted'
  | 'terminal'
  | 'invalid-payload'
  | 'unsupported-schema'
  | 'forbidden'
  | 'at-most-once'
  | 'idempotency-unavailable';

export const DEFAULT_DEAD_LETTER_STREAM = 'DLQ';
export const DEFAULT_DEAD_LETTER_PREFIX = 'dlq';

/**
 * Where a handler's dead letters go: `dlq.<stream>.<durable>` by default, so each consumer's
 * failures can be listed and redriven on their own.
 */
export function resolveDeadLetterTarget(
  option: DeadLetterOption,
  stream: string,
  durable: string | undefined,
  handlerId: string,
): ResolvedDeadLetter | undefined {
  if (option === false) return undefined;
  // An ephemeral handler has no durable name; its id (`Class.method`) made subject-safe stands in.
  const consumerKey = durable ?? handlerId.replace(/[^\w-]/g, '_');
  const subject = `${DEFAULT_DEAD_LETTER_PREFIX}.${stream}.${consumerKey}`;
  if (option === true) return { subject, stream: DEFAULT_DEAD_LETTER_STREAM };
  if (typeof option === 'string') return { subject: option, stream: DEFAULT_DEAD_LETTER_STREAM };
  return { subject: option.subject ?? subject, stream: option.stream ?? DEFAULT_DEAD_LETTER_STREAM };
}
