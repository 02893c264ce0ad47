import type { DeadLetterReason } from '../dead-letters/dead-letter-target.js';

/**
 * Outcomes the retry and dead-letter interceptors hand to the dispatcher. They travel through
 * the Nest pipeline as errors (retry) or a result value (dead-lettered), so users' own
 * interceptors around them see ordinary errors and results.
 */
export class RetryScheduled extends Error {
  constructor(
    readonly failure: unknown,
    readonly delayMs: number,
    readonly deadLetterError?: unknown,
  ) {
    super(failure instanceof Error ? failure.message : String(failure));
    this.name = 'RetryScheduled';
  }
}

/** The handler's failure is final; the dispatcher dead-letters (or terminates) the message. */
export class DeadLetterRequired extends Error {
  constructor(
    readonly failure: unknown,
    readonly reason: DeadLetterReason,
  ) {
    super(failure instanceof Error ? failure.message : String(failure));
    this.name = 'DeadLetterRequired';
  }
}

/** Result of a pipeline whose message now sits in the dead-letter stream. */
export class DeadLettered {
  constructor(
    readonly failure: unknown,
    readonly reason: DeadLetterReason,
    readonly deadLetterSeq: number,
  ) {}
}

/**
 * The handler's circuit breaker is open (or this failure opened it): the dispatcher keeps the
 * message and runs it again once the breaker admits it, without counting an attempt.
 */
export class BreakerHeld extends Error {
  constructor(
    readonly failure: unknown,
    /** A failed trial: the next run is the message's next attempt. */
    readonly counted: boolean,
  ) {
    super(failure instanceof Error ? failure.message : String(failure));
    this.name = 'BreakerHeld';
  }
}
