import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { InvalidOptionsError, TerminalError } from '../../lib/index.js';
import { CircuitBreaker, type CircuitBreakerState } from '../../lib/delivery/circuit-breaker.js';
import { FailurePolicy } from '../../lib/delivery/failure-policy.js';
import { decideFailure } from '../../lib/delivery/handler-runtime.js';
import { resolveHandlerOptions } from '../../lib/discovery/resolve-handler-options.js';
import { PayloadValidationError } from '../../lib/errors/jetstream-errors.js';

const quiet = new Logger('test');
quiet.log = () => undefined;
quiet.warn = () => undefined;
quiet.error = () => undefined;

function breaker(failures = 3, coolDownMs = 1_000) {
  const pauses: Date[] = [];
  const states: Array<[CircuitBreakerState, boolean]> = [];
  const b = new CircuitBreaker('H.handle', { failures, coolDownMs }, {
    pause: async (until) => void pauses.push(until),
    changed: (state, opened) => void states.push([state, opened]),
  }, quiet);
  return { b, pauses, states };
}

describe('CircuitBreaker', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('opens on the Nth consecutive failure, pauses the consumer for the cool-down, and holds that failure', () => {
    const { b, pauses, states } = breaker(3, 5_000);
    expect(b.failed()).toBeUndefined();
    b.succeeded(); // a success resets the count
    expect(b.failed()).toBeUndefined();
    expect(b.failed()).toBeUndefined();
    expect(b.state).toBe('closed');
    const before = Date.now();
    expect(b.failed()).toBe('hold');
    expect(b.state).toBe('open');
    expect(pauses).toHaveLength(1);
    expect(pauses[0].getTime() - before).toBe(5_000);
    expect(states).toEqual([['open', true]]);
    expect(b.opened).toBe(1);
    // Failures of calls still running when it opened are held too.
    expect(b.failed()).toBe('hold');
    expect(b.opened).toBe(1);
  });

  it('holds messages while open, lets one trial run when half-open, and a trial success runs the rest', async () => {
    const { b, states } = breaker(1);
    expect(b.admission()).toBeUndefined();
    b.failed();
    const held = b.admission()!; // the failure that opened it, waiting to run again
    const waiting = b.admission()!;
    const parked = b.untilNotOpen()!;
    let admitted: boolean[] = [];
    void held.then((v) => admitted.push(v));
    jest.advanceTimersByTime(999);
    await Promise.resolve();
    expect(admitted).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(b.state).toBe('half-open');
    expect(await held).toBe(true); // the oldest is the trial
    expect(await parked).toBe(true);
    // Another message while the trial runs waits.
    const third = b.admission()!;
    expect(third).toBeDefined();
    admitted = [];
    void waiting.then((v) => admitted.push(v));
    await Promise.resolve();
    expect(admitted).toEqual([]);
    b.succeeded();
    expect(b.state).toBe('closed');
    expect(await waiting).toBe(true);
    expect(await third).toBe(true);
    expect(states.map(([s]) => s)).toEqual(['open', 'half-open', 'closed']);
  });

  it('a failed trial opens it again for another cool-down and pauses again; the next trial is the next message in line', async () => {
    const { b, pauses } = breaker(1);
    b.failed();
    const first = b.admission()!;
    const second = b.admission()!;
    jest.advanceTimersByTime(1_000);
    expect(await first).toBe(true);
    expect(b.failed()).toBe('trial-failed');
    expect(b.state).toBe('open');
    expect(pauses).toHaveLength(2);
    expect(b.opened).toBe(2);
    const firstAgain = b.admission()!; // goes to the back of the line
    jest.advanceTimersByTime(1_000);
    expect(await second).toBe(true);
    b.ended(); // the trial ended neither way (say, an invalid payload): the next one gets it
    expect(await firstAgain).toBe(true);
    expect(b.state).toBe('half-open');
  });

  it('stop hands every held message back and admits no more', async () => {
    const { b } = breaker(1);
    b.failed();
    const held = b.admission()!;
    const parked = b.untilNotOpen()!;
    b.stop();
    expect(await held).toBe(false);
    expect(await parked).toBe(false);
    expect(await b.admission()).toBe(false);
  });

  it('a pause the server refuses is logged, and messages are held all the same', async () => {
    const errors: string[] = [];
    const logger = new Logger('test');
    logger.warn = () => undefined;
    logger.error = (m: unknown) => void errors.push(String(m));
    const b = new CircuitBreaker('H.handle', { failures: 1, coolDownMs: 1_000 }, { pause: () => Promise.reject(new Error('no permission')) }, logger);
    expect(b.failed()).toBe('hold');
    await Promise.resolve();
    await Promise.resolve();
    expect(errors[0]).toMatch(/H\.handle: circuit breaker could not pause the consumer on the server \(no permission\); holding/);
    expect(b.admission()).toBeDefined();
    b.stop();
  });
});

describe('decideFailure with a circuit breaker', () => {
  const options = resolveHandlerOptions('H.handle', {}, { durable: 'd', retry: { maxAttempts: 2 }, circuitBreaker: { failures: 2 } });
  const runtime = () => ({ policy: new FailurePolicy(options), sink: undefined, breaker: breaker(2).b });

  it('counts retryable and exhausted failures only: invalid payloads and terminal errors go their way', () => {
    const r = runtime();
    expect(decideFailure(r, new PayloadValidationError('bad', []), 1)).toEqual({ action: 'dead-letter', reason: 'invalid-payload' });
    expect(decideFailure(r, new TerminalError('no'), 1)).toEqual({ action: 'dead-letter', reason: 'terminal' });
    expect(r.breaker.state).toBe('closed');
    expect(decideFailure(r, new Error('down'), 2)).toEqual({ action: 'dead-letter', reason: 'exhausted' });
    // The second consecutive failure opens it: held uncounted, even on what was its last attempt.
    expect(decideFailure(r, new Error('down'), 2)).toEqual({ action: 'hold', counted: false });
    expect(decideFailure(r, new Error('down'), 2)).toEqual({ action: 'hold', counted: false });
    r.breaker.stop();
  });

  it('a failed trial counts as an attempt of its message, and on its last attempt the message is dead-lettered', async () => {
    jest.useFakeTimers();
    try {
      const r = runtime();
      decideFailure(r, new Error('down'), 1);
      decideFailure(r, new Error('down'), 1); // opens
      void r.breaker.admission();
      jest.advanceTimersByTime(1_000);
      expect(r.breaker.state).toBe('half-open');
      expect(decideFailure(r, new Error('still down'), 1)).toEqual({ action: 'hold', counted: true });
      jest.advanceTimersByTime(1_000);
      expect(decideFailure(r, new Error('still down'), 2)).toEqual({ action: 'dead-letter', reason: 'exhausted' });
      expect(r.breaker.state).toBe('open');
      r.breaker.stop();
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('circuitBreaker options', () => {
  it('resolves defaults and checks the values', () => {
    expect(resolveHandlerOptions('A.m', {}, { durable: 'd', circuitBreaker: true }).circuitBreaker).toEqual({ failures: 5, coolDownMs: 30_000 });
    expect(resolveHandlerOptions('A.m', {}, { durable: 'd', circuitBreaker: { failures: 2, coolDownMs: 1_000 } }).circuitBreaker).toEqual({ failures: 2, coolDownMs: 1_000 });
    expect(resolveHandlerOptions('A.m', {}, { durable: 'd' }).circuitBreaker).toBeUndefined();
    expect(resolveHandlerOptions('A.m', {}, { durable: 'd', circuitBreaker: false }).circuitBreaker).toBeUndefined();
  });

  it.each([
    [{ circuitBreaker: { failures: 0 } }, /@OnEvent on A\.m: circuitBreaker\.failures must be an integer >= 1/],
    [{ circuitBreaker: { coolDownMs: 500 } }, /circuitBreaker\.coolDownMs must be at least 1000 ms, got 500/],
    [{ circuitBreaker: 'yes' }, /circuitBreaker must be true or \{ failures\?, coolDownMs\? \}, got "yes"/],
    [{ circuitBreaker: true, delivery: 'at-most-once' }, /circuitBreaker needs a delivery that retries/],
    [{ circuitBreaker: true, batch: { maxMessages: 10 } }, /circuitBreaker is not supported on batch handlers/],
    [{ circuitBreaker: true, partitions: { count: 4, key: 1 } }, /circuitBreaker is not supported with partitions yet/],
  ])('rejects %p', (options, message) => {
    expect(() => resolveHandlerOptions('A.m', {}, { durable: 'd', ...(options as object) })).toThrow(InvalidOptionsError);
    expect(() => resolveHandlerOptions('A.m', {}, { durable: 'd', ...(options as object) })).toThrow(message);
  });
});
