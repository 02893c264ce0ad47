import { computeBackoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from '../../lib/delivery/backoff.js';

const noJitter = (p: Partial<BackoffPolicy>): BackoffPolicy => ({ ...DEFAULT_BACKOFF, jitter: false, ...p });

describe('computeBackoffDelay', () => {
  it('doubles from the initial delay per failed delivery, up to the cap', () => {
    const policy = noJitter({ initialDelayMs: 100, maxDelayMs: 1_000 });
    expect([1, 2, 3, 4, 5, 6].map((n) => computeBackoffDelay(n, policy))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('never overflows for huge attempt counts', () => {
    expect(computeBackoffDelay(10_000, noJitter({ initialDelayMs: 1_000, maxDelayMs: 60_000 }))).toBe(60_000);
  });

  it('fixed keeps the initial delay', () => {
    const policy = noJitter({ backoff: 'fixed', initialDelayMs: 250 });
    expect([1, 5, 50].map((n) => computeBackoffDelay(n, policy))).toEqual([250, 250, 250]);
  });

  it('an explicit list is used step by step and its last value repeats', () => {
    const policy = noJitter({ backoff: [10, 20, 30], maxDelayMs: 1_000 });
    expect([1, 2, 3, 4, 9].map((n) => computeBackoffDelay(n, policy))).toEqual([10, 20, 30, 30, 30]);
  });

  it('equal jitter keeps the delay between half and all of it', () => {
    const policy = { ...DEFAULT_BACKOFF, initialDelayMs: 1_000, maxDelayMs: 60_000, jitter: true };
    expect(computeBackoffDelay(1, policy, () => 0)).toBe(500);
    expect(computeBackoffDelay(1, policy, () => 0.999999)).toBe(1_000);
    for (let i = 0; i < 200; i++) {
      const d = computeBackoffDelay(3, policy);
      expect(d).toBeGreaterThanOrEqual(2_000);
      expect(d).toBeLessThanOrEqual(4_000);
    }
  });

  it('treats attempt 0 or fractions as the first attempt', () => {
    const policy = noJitter({ initialDelayMs: 100 });
    expect(computeBackoffDelay(0, policy)).toBe(100);
    expect(computeBackoffDelay(1.7, policy)).toBe(100);
  });
});
