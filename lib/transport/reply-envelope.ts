/**
 * Request-reply body on the wire: `{ response }` or `{ err }`, JSON. Nest's own transports use
 * the same split, so a thrown `RpcException`'s payload reaches the caller as the error.
 */
export type ReplyEnvelope = { readonly response: unknown } | { readonly err: unknown };

export function errorForWire(error: unknown): unknown {
  if (error instanceof Error) return { name: error.name, message: error.message };
  return error === undefined ? { message: 'Internal server error' } : error;
}
