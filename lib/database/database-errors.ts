import { JetStreamModuleError } from '../errors/jetstream-errors.js';

/**
 * True when an error says the database cannot be reached or dropped the connection, as opposed
 * to a statement it refused: the relay backs off and retries the first, and fails on the second.
 * SQLSTATE classes 08 (connection exception) and 57P (operator intervention: shutdown,
 * terminated backend), and Node's socket errors.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  // Not `instanceof Error`: a socket error is made in Node's own realm, which under a VM context
  // (Jest's ESM mode, a user's test) is another `Error` than the one this module sees.
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    // 28xxx: the role may not log in (revoked, rotated credentials): an outage to wait out too.
    if (code.startsWith('28')) return true;
    if (code.startsWith('08') || code.startsWith('57P') || code === '53300') return true;
    if (/^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH|AI_AGAIN)$/.test(code)) return true;
  }
  const message = (err as { message?: unknown }).message;
  return (
    typeof message === 'string' &&
    /Connection terminated|connection is closed|Client has encountered a connection error|PGlite is closed|Client was closed/i.test(message)
  );
}

/**
 * COMMIT found the transaction aborted (a statement had failed and the work went on, e.g. it
 * caught the error): PostgreSQL then rolls back and answers ROLLBACK without an error, so the
 * adapter raises this one instead of reporting a commit that did not happen. `code` is the
 * SQLSTATE a statement on that transaction would have got (25P02, in_failed_sql_transaction).
 */
export class TransactionRolledBackError extends JetStreamModuleError {
  readonly code = '25P02';
  constructor() {
    super('COMMIT rolled the transaction back: one of its statements had failed and the work went on without rolling back (a caught database error?)');
  }
}
