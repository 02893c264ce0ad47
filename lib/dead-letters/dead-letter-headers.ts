/** Headers a dead-lettered message carries besides the original ones. */
export const DeadLetterHeaders = {
  OriginalSubject: 'Dlq-Original-Subject',
  OriginalStream: 'Dlq-Original-Stream',
  OriginalSequence: 'Dlq-Original-Sequence',
  OriginalMsgId: 'Dlq-Original-Msg-Id',
  Consumer: 'Dlq-Consumer',
  Handler: 'Dlq-Handler',
  Attempts: 'Dlq-Attempts',
  Reason: 'Dlq-Reason',
  ErrorName: 'Dlq-Error-Name',
  ErrorMessage: 'Dlq-Error-Message',
  FailedAt: 'Dlq-Failed-At',
  RedriveCount: 'Dlq-Redrive-Count',
  /** Size of the original payload when it was too large to copy (the copy then has no body). */
  PayloadOmitted: 'Dlq-Payload-Omitted',
} as const;

/** Carries a message's identity across a redrive, so consumers that handled it skip it. */
export const IDEMPOTENCY_KEY_HEADER = 'Jetstream-Idempotency-Key';

// Headers that steer the server on publish; replaying them would reject or reshape the copy.
// Nats-Stream-Source is what the server writes on a sourced message (a partitioned group's
// stream, any stream sourcing another); a publish that carries it is refused (10227).
const NOT_COPIED = /^(nats-msg-id|nats-expected-.*|nats-rollup|nats-ttl|nats-schedule.*|nats-batch-.*|nats-stream-source)$/i;

export function isCopiedHeader(name: string): boolean {
  return !NOT_COPIED.test(name);
}

/** Header values cannot hold line breaks; keep them readable and bounded. */
export function headerValue(text: string, max = 1_024): string {
  const flat = text.replace(/[\r\n]+/g, ' ').replace(/[\u0000-\u001f\u007f]/g, '');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
