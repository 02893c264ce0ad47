import { createServer, type AddressInfo } from 'node:net';
// The suite uses the same helpers the package ships to its users (nestjs-jetstream/testing).
export {
  NatsServerProcess,
  parseNatsServerVersion,
  isSupportedVersion,
  resolveNatsServer,
  startCluster,
  recordHandled,
  capturePublished,
} from '../../lib/testing/index.js';
export type { ServerResolution, ServerVersion, StartOptions } from '../../lib/testing/index.js';

/** URL of the server the whole run shares (started by the global setup, or NATS_TEST_URL). */
export function testNatsUrl(): string {
  const url = process.env.NATS_TEST_URL;
  if (!url) {
    throw new Error('No test server: NATS_TEST_URL is unset. Run the suite with `npm test` so the global setup starts a nats-server.');
  }
  return url;
}

/** True when this run manages its own server processes (not pointed at NATS_TEST_URL). */
export function managedServers(): boolean {
  return process.env.NATS_HARNESS_MANAGED === '1';
}

let counter = 0;

/** A name safe for streams, durables and subject tokens, unique across workers and runs. */
export function uniqueName(prefix: string): string {
  counter++;
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter}`.replace(/[^A-Za-z0-9_-]/g, '_');
}

export interface WaitOptions {
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
  /** What was awaited; a function is called only on failure, so it can show what was observed. */
  readonly message?: string | (() => string);
}

/**
 * Polls until the predicate holds, or fails with the message after the deadline. This is how
 * tests wait on the broker: on an observable condition, never on a fixed sleep.
 */
export async function waitFor(predicate: () => boolean | Promise<boolean>, options: WaitOptions = {}): Promise<void> {
  const { timeoutMs = 10_000, intervalMs = 20, message = 'condition' } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await predicate()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${typeof message === 'function' ? message() : message}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Rejects if the promise does not settle in time: a deadline for a single awaited event. */
export async function withDeadline<T>(promise: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${message}`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A loopback port nothing listens on: bound by the OS, then released (a refused connection, or a port to give a server). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
