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
  /** `JSMessageTTLInvalidErr`: a `Nats-TTL` the server cannot parse, or under one second. */
  MessageTtlInvalid: 10165,
  /** `JSMessageTTLDisabledErr`: a `Nats-TTL` on a stream without `allow_msg_ttl`. */
  MessageTtlDisabled: 10166,
  /** `JSAtomicPublishDisabledErr`: a batch on a stream without `allow_atomic`. */
  AtomicPublishDisabled: 10174,
  /** `JSAtomicPublishIncompleteBatchErr`: the commit came without every message of the batch. */
  AtomicBatchIncomplete: 10176,
  /** `JSMessageSchedulesDisabledErr`: a `Nats-Schedule` on a stream without `allow_msg_schedules`. */
  MessageSchedulesDisabled: 10188,
  /** `JSMessageSchedulesPatternInvalidErr`: a cron, `@every` or `@at` the server cannot parse. */
  SchedulePatternInvalid: 10189,
  /** `JSMessageSchedulesTargetInvalidErr`: a target outside the stream, a wildcard, or the schedule's own subject. */
  ScheduleTargetInvalid: 10190,
} as const;

export type ApiCode = (typeof ApiCode)[keyof typeof ApiCode];

/** True when the server answered with one of these API error codes. */
export function hasApiCode(err: unknown, ...codes: readonly ApiCode[]): err is JetStreamApiError {
  return err instanceof JetStreamApiError && codes.includes(err.code as ApiCode);
}
