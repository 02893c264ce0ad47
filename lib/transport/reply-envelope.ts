import { RequestStoredByStreamError } from '../errors/jetstream-errors.js';

/**
 * Request-reply body on the wire: `{ response }` or `{ err }`, JSON. Nest's own transports use
 * the same split, so a thrown `RpcException`'s payload reaches the caller as the error.
 */
export type ReplyEnvelope = { readonly response: unknown } | { readonly err: unknown };

export function errorForWire(error: unknown): unknown {
  if (error instanceof Error) return { name: error.name, message: error.message };
  return error === undefined ? { message: 'Internal server error' } : error;
}

/**
 * A JetStream publish ack (`{ stream, seq }`, or `{ stream, error }` when the stream refused it)
 * where a reply was expected: a stream captures the request subject and answered first. Our
 * envelope never has a `stream` key without `response` or `err`, so the two cannot be confused.
 */
export function storedByStream(subject: string, body: unknown): RequestStoredByStreamError | undefined {
  if (!body || typeof body !== 'object' || 'response' in body || 'err' in body) return undefined;
  const ack = body as { stream?: unknown; seq?: unknown; error?: { description?: unknown } };
  if (typeof ack.stream !== 'string') return undefined;
  if (ack.error) return new RequestStoredByStreamError(subject, ack.stream, undefined, String(ack.error.description ?? 'no description'));
  return new RequestStoredByStreamError(subject, ack.stream, typeof ack.seq === 'number' ? ack.seq : undefined);
}
