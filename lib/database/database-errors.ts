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
