/** Under the 5 s default test timeout of Jest and Vitest, with room for the test's own steps. */
export const WAIT_TIMEOUT_MS = 4_000;

/**
 * Resolves with `collect()` once it holds `count` items, checking now and on every `wake` the
 * recorder sends; rejects with `explain(found)` after `timeoutMs`. The one wait loop of the
 * testing helpers.
 */
export function waitForMatches<T>(
  waiters: Set<() => void>,
  collect: () => T[],
  count: number,
  timeoutMs: number,
  explain: (found: number) => string,
): Promise<T[]> {
  return new Promise<T[]>((resolve, reject) => {
    const check = () => {
      const found = collect();
      if (found.length < count) return;
      cleanup();
      resolve(found);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Timed out after ${timeoutMs} ms: ${explain(collect().length)}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      waiters.delete(check);
    };
    waiters.add(check);
    check();
  });
}
