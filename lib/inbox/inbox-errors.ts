import { describeCause, JetStreamModuleError } from '../errors/jetstream-errors.js';

/** The inbox's table cannot be used at startup (missing, unreadable, the database down). */
export class InboxUnavailableError extends JetStreamModuleError {
  constructor(detail: string, cause: unknown) {
    super(`JetStreamInboxModule: ${detail}: ${describeCause(cause)}`, { cause });
  }
}
