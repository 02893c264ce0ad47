export type BackoffKind = 'exponential' | 'fixed' | readonly number[];

export interface BackoffPolicy {
  readonly backoff: BackoffKind;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly jitter: boolean;
}

export const DEFAULT_BACKOFF: BackoffPolicy = {
  backoff: 'exponential',
  initialDelayMs: 1_000,
  maxDelayMs: 60_000,
  jitter: true,
};

/**
 * Delay before the next delivery after `attempt` failed deliveries (1 = the first delivery
 * failed). Equal jitter keeps at least half the delay, so retries never collapse to an
 * immediate loop while still spreading a thundering herd.
 */
export function computeBackoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const n = Math.max(1, Math.floor(attempt));
  let delay: number;
  if (Array.isArray(policy.backoff)) {
    const steps = policy.backoff as readonly number[];
    delay = steps.length === 0 ? policy.initialDelayMs : steps[Math.min(n, steps.length) - 1];
  } else if (policy.backoff === 'fixed') {
    delay = policy.initialDelayMs;
  } else {
    // 2^(n-1) overflows to Infinity long before n gets large; the cap handles it.
    delay = policy.initialDelayMs * 2 ** (n - 1);
  }
  delay = Math.min(delay, policy.maxDelayMs);
  if (policy.jitter) delay = delay / 2 + random() * (delay / 2);
  return Math.max(0, Math.round(delay));
}
