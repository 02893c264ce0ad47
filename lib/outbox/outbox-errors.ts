import { describeCause, JetStreamModuleError } from '../errors/jetstream-errors.js';

/** The outbox's table cannot be used at startup (missing, unreadable, the database down). */
export class OutboxUnavailableError extends JetStreamModuleError {
  constructor(detail: string, cause: unknown) {
    super(`JetStreamOutboxModule: ${detail}: ${describeCause(cause)}`, { cause });
  }
}
