import { JetStreamModuleError } from './jetstream-errors.js';

/**
 * The connected nats-server is too old for a feature the application asked for. Older servers
 * do not refuse these requests: they ignore the headers or stream flags and store the message
 * as a plain one (a TTL that never expires, a schedule that never fires, a batch stored item by
 * item), so the module refuses in their place.
 */
export class ServerFeatureUnavailableError extends JetStreamModuleError {
  constructor(
    /** What was asked for, e.g. `per-message TTL`. */
    readonly feature: string,
    /** The oldest nats-server that has it, e.g. `2.11.0`. */
    readonly requiredVersion: string,
    /** The connected server's version. */
    readonly serverVersion: string,
    /** Where it was asked for, e.g. `publish to "orders.created"`. */
    readonly usage: string,
  ) {
    super(`${usage}: ${feature} needs nats-server ${requiredVersion} or newer; the connected server is ${serverVersion}`);
  }
}

/**
 * The stream refused a message because a per-stream flag is off (allow_msg_ttl,
 * allow_msg_schedules, allow_atomic) or the value is invalid; names the flag to set.
 */
export class StreamFeatureDisabledError extends JetStreamModuleError {
  constructor(
    readonly subject: string,
    readonly code: number,
    readonly flag: string,
    reason: string,
    cause?: unknown,
  ) {
    super(`Publish to "${subject}" was rejected (code ${code}): ${reason}; the stream that captures it needs ${flag}: true in its stream definition`, { cause });
  }
}

/** The server stored nothing of an atomic batch; names why (disabled on the stream, too large, ...). */
export class AtomicBatchRejectedError extends JetStreamModuleError {
  constructor(
    readonly size: number,
    /** The first item's subject, which names the stream. */
    readonly subject: string,
    readonly code: number | undefined,
    reason: string,
  ) {
    super(`Atomic batch of ${size} message(s) to "${subject}"… was rejected${code ? ` (code ${code})` : ''}, nothing stored: ${reason}`);
  }
}
