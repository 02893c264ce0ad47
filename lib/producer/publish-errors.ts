import { errors as natsErrors, RequestError } from '@nats-io/transport-node';
import { JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import {
  ConnectionClosedError,
  describeCause,
  JetStreamModuleError,
  NoStreamForSubjectError,
  PayloadTooLargeError,
  PublishRejectedError,
  PublishTimeoutError,
  StreamUnavailableError,
} from '../errors/jetstream-errors.js';
import { ApiCode, hasApiCode } from '../errors/jetstream-api-codes.js';
import { StreamFeatureDisabledError } from '../errors/server-feature-errors.js';

/** Refusals that mean "the stream has this feature off": the error names the flag to set. */
const STREAM_FLAG_OF_CODE: Readonly<Record<number, string>> = {
  [ApiCode.MessageTtlDisabled]: 'allow_msg_ttl',
  [ApiCode.MessageSchedulesDisabled]: 'allow_msg_schedules',
  [ApiCode.AtomicPublishDisabled]: 'allow_atomic',
};
import { NoReplierError, ReplyInboxClosedError, ReplyTimeoutError } from '../connection/reply-inbox.js';

/** What a failed publish was: enough to name the cause precisely. */
export interface FailedPublish {
  readonly subject: string;
  readonly timeoutMs: number;
  /** Sends made, the resends with the same msg-id included. */
  readonly attempts: number;
  /** Encoded payload size, for the max_payload message. */
  readonly bytes: number;
  readonly maxPayload: number | undefined;
  /** Tells "no stream captures the subject" from "its stream cannot answer now". */
  readonly jsm: JetStreamManager;
}

/** Turns the client's errors into the module's typed ones, each naming the subject. */
export async function toPublishError(err: unknown, publish: FailedPublish): Promise<Error> {
  const { subject } = publish;
  if (err instanceof JetStreamModuleError) return err;
  if (isNoResponders(err)) return explainNoResponders(err, subject, publish.jsm);
  // The client refuses an oversized message before sending it, naming neither sizes nor subject.
  if (err instanceof natsErrors.InvalidArgumentError && err.message.includes('max_payload')) {
    return new PayloadTooLargeError(subject, publish.bytes, publish.maxPayload, err);
  }
  if (err instanceof natsErrors.TimeoutError || err instanceof ReplyTimeoutError) return new PublishTimeoutError(subject, publish.timeoutMs, err, publish.attempts);
  if (
    err instanceof natsErrors.ClosedConnectionError ||
    err instanceof natsErrors.DrainingConnectionError ||
    err instanceof ReplyInboxClosedError
  ) {
    return new ConnectionClosedError(`publish to "${subject}"`, err);
  }
  if (err instanceof JetStreamApiError) {
    const flag = STREAM_FLAG_OF_CODE[err.code];
    if (flag) return new StreamFeatureDisabledError(subject, err.code, flag, err.message, err);
    return new PublishRejectedError(subject, err.code, err.message, err);
  }
  if (err instanceof natsErrors.PermissionViolationError) {
    return new PublishRejectedError(subject, undefined, `permission denied (${err.message})`, err);
  }
  return new PublishRejectedError(subject, undefined, describeCause(err), err);
}

/**
 * "No responders" means no stream captures the subject, or its stream cannot answer right now
 * (leader election, JetStream starting after a restart): telling a caller the first during the
 * second would make a transient fault look like a configuration error. One stream lookup, on
 * the failure path only, tells them apart.
 */
async function explainNoResponders(err: unknown, subject: string, jsm: JetStreamManager): Promise<Error> {
  try {
    return new StreamUnavailableError(subject, await jsm.streams.find(subject), err);
  } catch (lookupError) {
    if (hasApiCode(lookupError, ApiCode.StreamNotFound)) return new NoStreamForSubjectError(subject, err);
    return new StreamUnavailableError(subject, undefined, err);
  }
}

// The client wraps "no responders" in an error class it does not export; match its name and cause.
// The module's publish path reports it as NoReplierError, and JetStream off for the account as
// the API error the client would have turned into that class.
function isNoResponders(err: unknown): boolean {
  if (err instanceof NoReplierError || hasApiCode(err, ApiCode.JetStreamNotEnabledForAccount)) return true;
  if (err instanceof RequestError) return err.isNoResponders();
  if (err instanceof Error && err.name === 'JetStreamNotEnabled') return true;
  const cause = err instanceof Error ? err.cause : undefined;
  return cause instanceof RequestError && cause.isNoResponders();
}
