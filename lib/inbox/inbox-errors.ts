import { describeCause, JetStreamModuleError } from '../errors/jetstream-errors.js';

/** The inbox's table cannot be used at startup (missing, unreadable, the database down). */
export class InboxUnavailableError extends JetStreamModuleError {
  constructor(detail: string, cause: unknown) {
    super(`JetStreamInboxModule: ${detail}: ${describeCause(cause)}`, { cause });
  }
}

/**
 * The attempt's transaction could not begin (or claim its row) because the database cannot be
 * reached: the handler did not run. Internal: the dispatcher holds the message instead of
 * failing the attempt (`DatabaseHold`).
 */
export class DatabaseUnreachable extends Error {
  constructor(override readonly cause: unknown) {
    super(`the inbox's database cannot be reached: ${describeCause(cause)}`, { cause });
    this.name = 'DatabaseUnreachable';
  }
}
