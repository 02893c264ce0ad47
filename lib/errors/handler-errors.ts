import { JetStreamModuleError } from './jetstream-errors.js';

/**
 * Throw from a handler when retrying cannot help (a business rejection, a malformed event):
 * the message goes straight to the dead-letter stream.
 */
export class TerminalError extends JetStreamModuleError {}

/**
 * Throw from a handler to retry after a delay the handler knows better than the backoff
 * (an upstream `Retry-After`, a lock that frees at a known time).
 */
export class RetryableError extends JetStreamModuleError {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
