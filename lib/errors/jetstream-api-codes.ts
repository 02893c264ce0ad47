import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';

/**
 * The JetStream API error codes the module acts on. The client names most of them; the rest
 * carry the server's own names (nats-server `server/errors.json`), so no bare number stands in
 * the code.
 */
export const ApiCode = {
  ...JetStreamApiCodes,
  /** `JSConsumerAlreadyExists`: a create lost the race to another instance's create. */
  ConsumerAlreadyExists: 10148,
  /** `JSMessageTTLDisabledErr`: a write carried `Nats-TTL` to a stream without `allow_msg_ttl`. */
  MessageTtlDisabled: 10166,
} as const;

export type ApiCode = (typeof ApiCode)[keyof typeof ApiCode];

/** True when the server answered with one of these API error codes. */
export function hasApiCode(err: unknown, ...codes: readonly ApiCode[]): err is JetStreamApiError {
  return err instanceof JetStreamApiError && codes.includes(err.code as ApiCode);
}
