import { isError } from './failure-description.js';

/**
 * Every error the module raises on purpose derives from JetStreamModuleError, so callers can
 * tell our failures from their own with one `instanceof`. Each carries enough context in its
 * message to act on without a debugger.
 */
export class JetStreamModuleError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Module or handler options that cannot work; raised at startup, never at runtime. */
export class InvalidOptionsError extends JetStreamModuleError {}

/** A subject that NATS would reject or misroute (whitespace, empty tokens, misplaced wildcards). */
export class InvalidSubjectError extends JetStreamModuleError {
  constructor(
    readonly subject: string,
    reason: string,
  ) {
    super(`Invalid subject ${JSON.stringify(subject)}: ${reason}`);
  }
}

/** The initial connection could not be established; the application must not start half-wired. */
export class ConnectionFailedError extends JetStreamModuleError {
  constructor(
    readonly servers: readonly string[],
    cause: unknown,
  ) {
    super(
      `Could not connect to NATS at ${servers.join(', ')}: ${describeCause(cause)}`,
      { cause },
    );
  }
}

/** A stream in the options conflicts with the server's copy in a way the server cannot update. */
export class StreamConfigDriftError extends JetStreamModuleError {
  constructor(
    readonly stream: string,
    readonly fields: readonly string[],
    detail: string,
  ) {
    super(`Stream "${stream}" cannot be updated (field${fields.length > 1 ? 's' : ''} ${fields.join(', ')}): ${detail}`);
  }
}

/** The server refused to create a stream (overlapping subjects, limits, bad config...). */
export class StreamProvisioningError extends JetStreamModuleError {
  constructor(
    readonly stream: string,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`Stream "${stream}" could not be created: ${detail}`, options);
  }
}

/** A durable consumer on the server differs from the handler's options in a non-editable field. */
export class ConsumerConfigDriftError extends JetStreamModuleError {
  constructor(
    readonly stream: string,
    readonly durable: string,
    readonly fields: readonly string[],
    detail: string,
  ) {
    super(
      `Durable consumer "${durable}" on stream "${stream}" cannot be updated (field${fields.length > 1 ? 's' : ''} ${fields.join(', ')}): ${detail}`,
    );
  }
}

/** Raised at startup when handlers cannot be wired as declared (stream resolution, durable clashes). */
export class HandlerConfigurationError extends JetStreamModuleError {}

/** An event handler's subject that no stream captures: its consumer would have nothing to read. */
export class NoStreamForHandlerError extends HandlerConfigurationError {
  constructor(
    /** `Class.method` for `@OnEvent`, `@EventPattern(subject)` for the transport. */
    readonly handlerId: string,
    readonly subject: string,
    /** The streams looked at, as `"NAME" (subject, ...)`, nearest to the subject first. */
    readonly considered: readonly string[],
    omitted: number,
  ) {
    super(
      `${handlerLabel(handlerId, subject)}: no stream captures "${subject}"; streams considered: ${
        considered.length ? `${considered.join(', ')}${omitted ? ` and ${omitted} more` : ''}` : 'none (the server has no streams)'
      }. Add "${subject}" to a stream's subjects (module option "streams") or create a stream that captures it`,
    );
  }
}

/**
 * A `@MessagePattern` subject that a stream captures: JetStream would store every request and
 * answer it with a publish ack before the handler could reply. Raised at server startup.
 */
export class RequestPatternCapturedError extends JetStreamModuleError {
  constructor(
    readonly pattern: string,
    readonly stream: string,
    /** The stream's subject that overlaps the pattern. */
    readonly streamSubject: string,
    where: 'declared in the options' | 'on the server',
  ) {
    super(
      `@MessagePattern("${pattern}") cannot answer requests: stream "${stream}" (${where}) captures it with subject "${streamSubject}", so JetStream would store each request and reply with a publish ack before the handler could. Use a request subject that no stream captures, or take it out of the stream's subjects`,
    );
  }
}

/**
 * `send()` got a JetStream publish ack instead of a handler's reply: a stream captures the
 * request subject, and the request is now stored in that stream.
 */
export class RequestStoredByStreamError extends JetStreamModuleError {
  constructor(
    readonly subject: string,
    readonly stream: string,
    /** Where the request now sits in the stream; undefined when the stream refused to store it. */
    readonly seq: number | undefined,
    detail?: string,
  ) {
    super(
      `Request on "${subject}" was answered by stream "${stream}" instead of a @MessagePattern handler: the stream captures the subject ${
        seq === undefined ? `and refused the request (${detail ?? 'no detail'})` : `and stored the request as seq ${seq}`
      }. Use a request subject that no stream captures, or take it out of the stream's subjects`,
    );
  }
}

/** No stream captures the subject, so a publish would be lost. */
export class NoStreamForSubjectError extends JetStreamModuleError {
  constructor(
    readonly subject: string,
    cause?: unknown,
  ) {
    super(`No JetStream stream captures subject "${subject}"; add it to a stream's subjects`, { cause });
  }
}

/**
 * Nothing answered a publish although JetStream may hold a stream for the subject: the stream
 * has no leader right now (a cluster failover) or JetStream is still starting (a restarted
 * server). Transient, unlike NoStreamForSubjectError: publish again with the same msgId.
 */
export class StreamUnavailableError extends JetStreamModuleError {
  constructor(
    readonly subject: string,
    /** The stream that captures the subject, when JetStream could say. */
    readonly stream: string | undefined,
    cause?: unknown,
  ) {
    super(
      `Publish to "${subject}" got no answer: ${stream ? `stream "${stream}" has no leader right now` : 'JetStream is not answering'} (cluster failover or restarting server); it may or may not be stored after earlier attempts (publish again with the same msgId)`,
      { cause },
    );
  }
}

/** The server did not acknowledge a publish in time; the message may or may not be stored. */
export class PublishTimeoutError extends JetStreamModuleError {
  constructor(
    readonly subject: string,
    readonly timeoutMs: number,
    cause?: unknown,
    readonly attempts = 1,
  ) {
    super(
      `Publish to "${subject}" was not acknowledged ${attempts > 1 ? `after ${attempts} attempts of ${timeoutMs} ms each` : `within ${timeoutMs} ms`}; it may or may not be stored (publish again with the same msgId to be safe)`,
      { cause },
    );
  }
}

/** The connection is closed or draining; nothing more can be sent on it. */
export class ConnectionClosedError extends JetStreamModuleError {
  constructor(
    readonly operation: string,
    cause?: unknown,
  ) {
    super(`Cannot ${operation}: the NATS connection is closed or draining`, { cause });
  }
}

/** The server refused the publish (failed expectation, permissions, limits, ...). */
export class PublishRejectedError extends JetStreamModuleError {
  constructor(
    readonly subject: string,
    readonly code: number | undefined,
    reason: string,
    cause?: unknown,
  ) {
    super(`Publish to "${subject}" was rejected${code ? ` (code ${code})` : ''}: ${reason}`, { cause });
  }
}

/**
 * A handler call ran past its `timeoutMs`. Retryable like any failure; the call itself is
 * abandoned (JavaScript cannot cancel it) and whatever it does later is ignored.
 */
export class HandlerTimeoutError extends JetStreamModuleError {
  constructor(
    readonly handlerId: string,
    readonly timeoutMs: number,
  ) {
    super(`${handlerId} did not settle within ${timeoutMs} ms (timeoutMs); the call was abandoned and counts as a failed attempt`);
  }
}

/** The message (payload plus headers) is larger than the server's max_payload; nothing was sent. */
export class PayloadTooLargeError extends PublishRejectedError {
  constructor(
    subject: string,
    readonly bytes: number,
    readonly maxPayload: number | undefined,
    cause?: unknown,
  ) {
    super(
      subject,
      undefined,
      `payload of ${bytes} bytes exceeds ${maxPayload === undefined ? "the server's max_payload" : `the server's max_payload of ${maxPayload} bytes`} (headers count too); nothing was sent`,
      cause,
    );
  }
}

/** A payload that cannot be encoded for the wire (circular JSON, BigInt, ...). */
export class PayloadEncodingError extends JetStreamModuleError {}

/** An incoming payload that cannot become the handler's parameter: retrying cannot fix it. */
export class PayloadValidationError extends JetStreamModuleError {
  constructor(
    message: string,
    readonly details: readonly string[] = [],
    options?: ErrorOptions,
  ) {
    super(details.length ? `${message}: ${details.join('; ')}` : message, options);
  }
}

/**
 * A message written against a schema version the handler cannot read: newer than the handler's,
 * with no upcaster from it, or of another schema name. Retrying cannot help; a consumer that
 * knows the version can handle the redriven dead letter.
 */
export class UnsupportedSchemaError extends JetStreamModuleError {}

/** How errors name a handler: `@OnEvent("subject") on Class.method`; transport ids carry their decorator. */
export function handlerLabel(handlerId: string, subject: string): string {
  return handlerId.startsWith('@') ? handlerId : `@OnEvent("${subject}") on ${handlerId}`;
}

export function describeCause(cause: unknown): string {
  if (isError(cause)) {
    return cause.message || cause.name;
  }
  return String(cause);
}
