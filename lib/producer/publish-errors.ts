import { errors as natsErrors, RequestError } from '@nats-io/transport-node';
import { JetStreamApiError } from '@nats-io/jetstream';
import {
  ConnectionClosedError,
  describeCause,
  JetStreamModuleError,
  NoStreamForSubjectError,
  PublishRejectedError,
  PublishTimeoutError,
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

// The client wraps "no responders" in an error class it does not export; match its name and cause.
function isNoResponders(err: unknown): boolean {
  if (err instanceof RequestError) return err.isNoResponders();
  if (err instanceof Error && err.name === 'JetStreamNotEnabled') return true;
  const cause = err instanceof Error ? err.cause : undefined;
  return cause instanceof RequestError && cause.isNoResponders();
}
