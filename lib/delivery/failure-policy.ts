import { ForbiddenException, HttpException } from '@nestjs/common';
import type { ResolvedHandlerOptions } from '../decorators/on-event-options.js';
import { RetryableError, TerminalError } from '../errors/handler-errors.js';
import { PayloadValidationError, UnsupportedSchemaError } from '../errors/jetstream-errors.js';
import { computeBackoffDelay } from './backoff.js';
import type { DeadLetterReason } from '../dead-letters/dead-letter-target.js';

// The statuses a ValidationPipe answers with (400 by default, 422 with `errorHttpStatusCode`):
// the same failure as the module's own validation, so the same dead-letter reason.
const INVALID_INPUT_STATUSES = new Set([400, 422]);

export type FailureDecision =
  | { readonly action: 'retry'; readonly delayMs: number }
  | { readonly action: 'dead-letter'; readonly reason: DeadLetterReason };

/**
 * Decides what a failure means for one handler: retry after a delay, or give up. Pure, so the
 * retry interceptor and the dispatcher's fallback reach the same answer.
 */
export class FailurePolicy {
  constructor(private readonly options: ResolvedHandlerOptions) {}

  /** `attempt` is the 1-based number of the delivery (or in-place try) that just failed. */
  decide(error: unknown, attempt: number): FailureDecision {
    const { retry, delivery, retryable } = this.options;
    if (delivery === 'at-most-once') return { action: 'dead-letter', reason: 'at-most-once' };
    if (error instanceof PayloadValidationError) return { action: 'dead-letter', reason: 'invalid-payload' };
    if (error instanceof UnsupportedSchemaError) return { action: 'dead-letter', reason: 'unsupported-schema' };
    if (error instanceof ForbiddenException) return { action: 'dead-letter', reason: 'forbidden' };
    // A pipe or guard of the user's rejecting the input (e.g. Nest's ValidationPipe throws
    // BadRequestException): a client error, which no retry can fix.
    if (error instanceof HttpException && error.getStatus() >= 400 && error.getStatus() < 500 && error.getStatus() !== 408 && error.getStatus() !== 429) {
      return { action: 'dead-letter', reason: INVALID_INPUT_STATUSES.has(error.getStatus()) ? 'invalid-payload' : 'terminal' };
    }
    if (error instanceof TerminalError) return { action: 'dead-letter', reason: 'terminal' };
    if (retryable && !(error instanceof RetryableError) && !safeRetryable(retryable, error)) {
      return { action: 'dead-letter', reason: 'terminal' };
    }
    if (!retry.enabled || attempt >= retry.maxAttempts) return { action: 'dead-letter', reason: 'exhausted' };
    if (error instanceof RetryableError && error.retryAfterMs !== undefined && error.retryAfterMs >= 0) {
      return { action: 'retry', delayMs: Math.min(error.retryAfterMs, retry.maxDelayMs) };
    }
    return { action: 'retry', delayMs: computeBackoffDelay(attempt, retry) };
  }

  /** True when a delivery arrives past the last attempt (an earlier dead-letter publish failed). */
  exhaustedBeforeRun(attempt: number): boolean {
    const { retry, delivery } = this.options;
    return delivery !== 'at-most-once' && attempt > retry.maxAttempts;
  }

  /** True when a delivery that cannot run (its idempotency store unreachable) is the last one to try. */
  lastAttempt(attempt: number): boolean {
    return attempt >= this.options.retry.maxAttempts;
  }

  /** Delay before trying a failed dead-letter publish again. */
  deadLetterRetryDelay(attempt: number): number {
    return computeBackoffDelay(attempt, { ...this.options.retry, backoff: 'exponential' });
  }
}

// A classifier that throws must not turn a retryable failure into a lost message.
function safeRetryable(retryable: (error: unknown) => boolean, error: unknown): boolean {
  try {
    return retryable(error) !== false;
  } catch {
    return true;
  }
}
