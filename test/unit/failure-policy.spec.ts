import { BadRequestException, ForbiddenException, HttpException, NotFoundException } from '@nestjs/common';
import { resolveHandlerOptions } from '../../lib/discovery/resolve-handler-options.js';
import { FailurePolicy } from '../../lib/delivery/failure-policy.js';
import { RetryableError, TerminalError } from '../../lib/errors/handler-errors.js';
import { PayloadValidationError } from '../../lib/errors/jetstream-errors.js';
import type { OnEventOptions } from '../../lib/decorators/on-event-options.js';

// The decision table of one handler's failures, without a server: what the retry interceptor
// and the dispatcher's fallback both act on.
const policy = (options: OnEventOptions = {}) =>
  new FailurePolicy(resolveHandlerOptions('Spec.handle', {}, { retry: { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 1_000, jitter: false }, ...options }));

describe('FailurePolicy.decide', () => {
  it('retries an ordinary error with the backoff until the last attempt, then gives up as exhausted', () => {
    const p = policy();
    expect(p.decide(new Error('db down'), 1)).toEqual({ action: 'retry', delayMs: 100 });
    expect(p.decide(new Error('db down'), 2)).toEqual({ action: 'retry', delayMs: 200 });
    expect(p.decide(new Error('db down'), 3)).toEqual({ action: 'dead-letter', reason: 'exhausted' });
    expect(p.decide('a thrown string', 1)).toEqual({ action: 'retry', delayMs: 100 });
  });

  it('dead-letters at once what no retry can fix', () => {
    const p = policy();
    expect(p.decide(new TerminalError('card declined'), 1)).toEqual({ action: 'dead-letter', reason: 'terminal' });
    expect(p.decide(new PayloadValidationError('invalid', ['id must be a string']), 1)).toEqual({ action: 'dead-letter', reason: 'invalid-payload' });
    expect(p.decide(new ForbiddenException(), 1)).toEqual({ action: 'dead-letter', reason: 'forbidden' });
    expect(p.decide(new BadRequestException(['id must be a string']), 1)).toEqual({ action: 'dead-letter', reason: 'invalid-payload' });
    expect(p.decide(new NotFoundException(), 1)).toEqual({ action: 'dead-letter', reason: 'terminal' });
  });

  it('retries the client errors that mean "later": 408 and 429, and every 5xx', () => {
    const p = policy();
    for (const status of [408, 429, 500, 503]) {
      expect(p.decide(new HttpException('later', status), 1)).toEqual({ action: 'retry', delayMs: 100 });
    }
  });

  it('honours a RetryableError delay, capped by maxDelayMs, but never past the last attempt', () => {
    const p = policy();
    expect(p.decide(new RetryableError('locked', 250), 1)).toEqual({ action: 'retry', delayMs: 250 });
    expect(p.decide(new RetryableError('locked', 60_000), 1)).toEqual({ action: 'retry', delayMs: 1_000 });
    expect(p.decide(new RetryableError('locked'), 2)).toEqual({ action: 'retry', delayMs: 200 });
    expect(p.decide(new RetryableError('locked', 250), 3)).toEqual({ action: 'dead-letter', reason: 'exhausted' });
  });

  it('a retryable() classifier can make an error terminal; RetryableError and a throwing classifier still retry', () => {
    const p = policy({
      retryable: (err) => {
        if (err instanceof TypeError) throw new Error('classifier bug');
        return !(err instanceof RangeError);
      },
    });
    expect(p.decide(new RangeError('bad amount'), 1)).toEqual({ action: 'dead-letter', reason: 'terminal' });
    expect(p.decide(new Error('timeout'), 1)).toEqual({ action: 'retry', delayMs: 100 });
    expect(p.decide(new TypeError('x'), 1)).toEqual({ action: 'retry', delayMs: 100 });
    expect(policy({ retryable: () => false }).decide(new RetryableError('locked', 5), 1)).toEqual({ action: 'retry', delayMs: 5 });
  });

  it('at-most-once never retries, whatever failed', () => {
    const p = policy({ delivery: 'at-most-once' });
    expect(p.decide(new RetryableError('locked', 5), 1)).toEqual({ action: 'dead-letter', reason: 'at-most-once' });
    expect(p.exhaustedBeforeRun(99)).toBe(false);
  });

  it('retry: false dead-letters the first failure as exhausted', () => {
    expect(policy({ retry: false }).decide(new Error('x'), 1)).toEqual({ action: 'dead-letter', reason: 'exhausted' });
  });

  it('knows a delivery that arrives past the last attempt', () => {
    const p = policy();
    expect(p.exhaustedBeforeRun(3)).toBe(false);
    expect(p.exhaustedBeforeRun(4)).toBe(true);
  });

  it('backs off a failed dead-letter publish exponentially even when the handler retries at a fixed delay', () => {
    const p = policy({ retry: { maxAttempts: 3, backoff: 'fixed', initialDelayMs: 100, maxDelayMs: 1_000, jitter: false } });
    expect([1, 2, 3, 5].map((n) => p.deadLetterRetryDelay(n))).toEqual([100, 200, 400, 1_000]);
  });
});
