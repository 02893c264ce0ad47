import { describeCause, JetStreamModuleError } from '../errors/jetstream-errors.js';

/** The inbox's table cannot be used at startup (missing, unreadable, the database down). */
export class InboxUnavailableError extends JetStreamModuleError {
  constructor(detail: string, cause: unknown) {
    super(`JetStreamInboxModule: ${detail}: ${describeCause(cause)}`, { cause });
  }
}

/**
 * A group-committed inbox handler returned, but a statement of its transaction had failed and the
 * transaction was left aborted (an error the handler caught): its writes and its inbox row were
 * rolled back with that transaction, and the message is retried like any failure.
 */
export class InboxHandlerAbortedError extends JetStreamModuleError {
  constructor() {
    super('the inbox handler returned with its transaction aborted (one of its statements failed and the handler went on): its writes were rolled back; let the error propagate, or use a savepoint of your own around a statement that may fail');
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
