import { NoStreamForSubjectError, PayloadTooLargeError, PublishRejectedError } from '../errors/jetstream-errors.js';

/** Why a row can never be published, as the `reason` label of the parked metric. */
export type ParkReason = 'no_stream' | 'too_large' | 'permission_denied';

// JetStream's "message size exceeds maximum allowed" (the stream's max_msg_size).
const MESSAGE_TOO_LARGE = 10054;

/**
 * Tells a row that no retry can publish from one that waits for the broker. Only three causes
 * park: no stream captures the subject, the message is larger than the server or stream takes,
 * the connection's user may not publish to the subject. Everything else (timeouts, a stream
 * without a leader, a closed connection, limits that may clear) is a wait, and the answer is
 * only trusted while the connection is up: a failure seen while reconnecting is never a park.
 */
export function unpublishableReason(err: unknown, connected: boolean): ParkReason | undefined {
  if (!connected) return undefined;
  if (err instanceof NoStreamForSubjectError) return 'no_stream';
  if (err instanceof PayloadTooLargeError) return 'too_large';
  if (err instanceof PublishRejectedError) {
    if (err.code === MESSAGE_TOO_LARGE) return 'too_large';
    if (err.code === undefined && /permission/i.test(err.message)) return 'permission_denied';
  }
  return undefined;
}
