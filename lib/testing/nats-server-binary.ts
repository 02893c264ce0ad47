import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

// Finding a nats-server to test against: which one, and whether it is new enough.

export interface ServerVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  readonly text: string;
}

/** `nats-server: v2.15.1` → 2.15.1; undefined when the output holds no version. */
export function parseNatsServerVersion(output: string): ServerVersion | undefined {
  const m = /v(\d+)\.(\d+)\.(\d+)/.exec(output);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), text: `${m[1]}.${m[2]}.${m[3]}` };
}

/** The floor this module supports: 2.10 (consumer create/update actions; term reasons from 2.10.4). */
export function isSupportedVersion(v: ServerVersion): boolean {
  return v.major > 2 || (v.major === 2 && v.minor >= 10);
}

export type ServerResolution =
  | { readonly kind: 'external'; readonly url: string; readonly note: string }
  | { readonly kind: 'binary'; readonly path: string; readonly version: ServerVersion; readonly note: string }
  | { readonly kind: 'container'; readonly note: string };

function binaryVersion(path: string): ServerVersion | undefined {
  const out = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (out.error || out.status !== 0) return undefined;
  return parseNatsServerVersion(`${out.stdout}${out.stderr}`);
}

function onPath(): string | undefined {
  const out = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  const path = out.stdout?.trim();
  return out.status === 0 && path ? path : undefined;
}

function dockerReachable(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.DOCKER_HOST) || existsSync('/var/run/docker.sock');
}

/**
 * Where a test suite gets its broker, in order: `NATS_TEST_URL` (an existing server kept for
 * tests), `NATS_SERVER_BIN`, `.cache/nats-server/bin/nats-server` under the working directory
 * (what this repository's `npm run nats:install` fills), `nats-server` on PATH, then a
 * testcontainers NATS container when Docker is reachable. Binaries older than 2.10 are refused.
 * Nothing found is a loud error, never a silent skip.
 *
 * `NATS_URL` is never read: it is the app's own server (often loaded from `.env` by
 * `@nestjs/config`), and a suite run against it leaves data there and reads what it finds.
 */
export function resolveNatsServer(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): ServerResolution {
  if (env.NATS_TEST_URL) {
    return { kind: 'external', url: env.NATS_TEST_URL, note: `using the existing server at NATS_TEST_URL (${redact(env.NATS_TEST_URL)})` };
  }
  const cached = resolve(cwd, '.cache/nats-server/bin/nats-server');
  const rejected: string[] = [];
  const candidates: Array<[string | undefined, string]> = [
    [env.NATS_SERVER_BIN, 'NATS_SERVER_BIN'],
    [existsSync(cached) ? cached : undefined, '.cache (npm run nats:install)'],
    [onPath(), 'PATH'],
  ];
  for (const [path, source] of candidates) {
    if (!path) continue;
    const version = binaryVersion(path);
    if (!version) {
      rejected.push(`${path} (${source}): does not run or reports no version`);
    } else if (!isSupportedVersion(version)) {
      rejected.push(`${path} (${source}): v${version.text} is older than 2.10`);
    } else {
      return { kind: 'binary', path, version, note: `using ${path} v${version.text} (from ${source})` };
    }
  }
  if (dockerReachable(env)) return { kind: 'container', note: `using a testcontainers NATS container (no local binary found)` };
  throw new Error(
    [
      'No nats-server >= 2.10 to test against. Broker tests never run against mocks, so this stops here.',
      ...rejected.map((r) => `  rejected: ${r}`),
      'Fix: install nats-server >= 2.10 (NATS_SERVER_BIN or PATH), or set NATS_TEST_URL to a running server with JetStream,',
      `or make Docker reachable for testcontainers.${env.NATS_URL ? ' NATS_URL is the app\'s server and is never used for tests.' : ''}`,
    ].join('\n'),
  );
}

// Said out loud, so a suite that used to run against NATS_URL does not look silently redirected.
export function ignoredAppServer(env: NodeJS.ProcessEnv): string {
  return env.NATS_URL ? `; NATS_URL (${redact(env.NATS_URL)}) is the app's server, never used by the testing utilities` : '';
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/g, '//***@');
}

/** A binary to start (never an external URL): for tests that start, kill or cluster servers. */
export function resolveBinary(): string {
  const r = resolveNatsServer({ ...process.env, NATS_TEST_URL: undefined });
  if (r.kind !== 'binary') throw new Error('No nats-server binary to start (set NATS_SERVER_BIN or put nats-server >= 2.10 on PATH)');
  return r.path;
}
