import { errors as natsErrors, RequestError } from '@nats-io/transport-node';
import { JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import {
  ConnectionClosedError,
  describeCause,
  JetStreamModuleError,
  NoStreamForSubjectError,
  PayloadTooLargeError,
  PublishRejectedError,
  PublishTimeoutError,
  StreamUnavailableError,
} from '../errors/jetstream-errors.js';

/** Turns the client's errors into the module's typed ones, each naming the subject. */
export function toPublishError(err: unknown, subject: string, timeoutMs: number, attempts = 1): Error {
  if (err instanceof JetStreamModuleError) return err;
  // The client reports "no responders" (no stream listens on the subject) as JetStream missing.
  if (isNoResponders(err)) {
    return new NoStreamForSubjectError(subject, err);
  }
  if (err instanceof natsErrors.TimeoutError) return new PublishTimeoutError(subject, timeoutMs, err, attempts);
  if (err instanceof natsErrors.ClosedConnectionError || err instanceof natsErrors.DrainingConnectionError) {
    return new ConnectionClosedError(`publish to "${subject}"`, err);
  }
  if (err instanceof JetStreamApiError) {
    return new PublishRejectedError(subject, err.code, err.message, err);
  }
  if (err instanceof natsErrors.PermissionViolationError) {
    return new PublishRejectedError(subject, undefined, `permission denied (${err.message})`, err);
  }
  return new PublishRejectedError(subject, undefined, describeCause(err), err);
}

/**
 * The client refuses a message larger than the server's max_payload before sending it, with an
 * InvalidArgumentError that names neither the sizes nor the subject: say both.
 */
export function toMaxPayloadError(err: unknown, subject: string, bytes: number, maxPayload: number | undefined): Error | undefined {
  if (!(err instanceof natsErrors.InvalidArgumentError) || !err.message.includes('max_payload')) return undefined;
  return new PayloadTooLargeError(subject, bytes, maxPayload, err);
}

/**
 * "No responders" means no stream captures the subject, or its stream cannot answer right now
 * (leader election, JetStream starting after a restart): telling a caller the first during the
 * second would make a transient fault look like a configuration error. One stream lookup, on
 * the failure path only, tells them apart.
 */
export async function explainNoResponders(err: unknown, subject: string, jsm: JetStreamManager): Promise<Error | undefined> {
  if (!isNoResponders(err)) return undefined;
  try {
    return new StreamUnavailableError(subject, await jsm.streams.find(subject), err);
  } catch (lookupError) {
    if (lookupError instanceof JetStreamApiError && lookupError.code === STREAM_NOT_FOUND) return new NoStreamForSubjectError(subject, err);
    return new StreamUnavailableError(subject, undefined, err);
  }
}

const STREAM_NOT_FOUND = 10059;

// The client wraps "no responders" in an error class it does not export; match its name and cause.
function isNoResponders(err: unknown): boolean {
  if (err instanceof RequestError) return err.isNoResponders();
  if (err instanceof Error && err.name === 'JetStreamNotEnabled') return true;
  const cause = err instanceof Error ? err.cause : undefined;
  return cause instanceof RequestError && cause.isNoResponders();
}
