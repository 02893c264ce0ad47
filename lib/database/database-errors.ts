import { JetStreamModuleError } from '../errors/jetstream-errors.js';

/**
 * The error and the errors it wraps (`cause`), outermost first: an ORM wraps the driver's error
 * (Drizzle's `DrizzleQueryError` holds node-postgres's as its cause), and the SQLSTATE is on the
 * driver's. Not `instanceof Error`: a socket error is made in Node's own realm, which under a VM
 * context (Jest's ESM mode, a user's test) is another `Error` than the one this module sees.
 */
function* errorChain(err: unknown): Generator<{ code?: unknown; message?: unknown }> {
  for (let e = err, depth = 0; typeof e === 'object' && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    yield e as { code?: unknown; message?: unknown };
  }
}

/**
 * True when the error, or one it wraps, carries this SQLSTATE (or Node socket error code): an
 * ORM's error may carry a code of its own outside the driver's.
 */
export function hasDatabaseErrorCode(err: unknown, code: string): boolean {
  for (const e of errorChain(err)) if (e.code === code) return true;
  return false;
}

/**
 * True when an error says the database cannot be reached or dropped the connection, as opposed
 * to a statement it refused: the relay backs off and retries the first, and fails on the second.
 * SQLSTATE classes 08 (connection exception) and 57P (operator intervention: shutdown,
 * terminated backend), and Node's socket errors.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (const e of errorChain(err)) {
    const code = e.code;
    if (typeof code === 'string') {
      // 28xxx: the role may not log in (revoked, rotated credentials): an outage to wait out too.
      if (code.startsWith('28')) return true;
      if (code.startsWith('08') || code.startsWith('57P') || code === '53300') return true;
      if (/^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH|AI_AGAIN)$/.test(code)) return true;
    }
    if (
      typeof e.message === 'string' &&
      /Connection terminated|connection is closed|Client has encountered a connection error|PGlite is closed|Client was closed/i.test(e.message)
    ) {
      return true;
    }
  }
  return false;
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
