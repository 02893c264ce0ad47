import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const READY_TIMEOUT_MS = 15_000;

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
function ignoredAppServer(env: NodeJS.ProcessEnv): string {
  return env.NATS_URL ? `; NATS_URL (${redact(env.NATS_URL)}) is the app's server, never used by the testing utilities` : '';
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/g, '//***@');
}

export interface StartOptions {
  /** Default true. */
  readonly jetstream?: boolean;
  /** Store directory; default a fresh temp dir, removed on stop(). */
  readonly storeDir?: string;
  /** Client port; default a random free one chosen by the server. */
  readonly port?: number;
  /** nats-server config file text, passed with -c. */
  readonly config?: string;
  /** Extra command-line arguments. */
  readonly args?: readonly string[];
  /** Binary to run; default the resolved one. */
  readonly binary?: string;
}

const started = new Set<NatsServerProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test that forgot stop(), or a crashed worker, must not leave servers running.
  process.on('exit', () => {
    for (const server of started) server.forceKillSync();
  });
}

/** A nats-server process the caller started and owns: only these are ever killed. */
export class NatsServerProcess {
  private child?: ChildProcess;
  private output: string[] = [];
  private exited?: Promise<void>;
  private portValue: number;

  private constructor(
    private readonly binary: string,
    private readonly options: StartOptions,
    readonly storeDir: string,
    private readonly ownsStoreDir: boolean,
    private readonly configFile: string | undefined,
  ) {
    this.portValue = options.port ?? -1;
  }

  static async start(options: StartOptions = {}): Promise<NatsServerProcess> {
    const binary = options.binary ?? resolveBinary();
    const ownsStoreDir = !options.storeDir;
    const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), 'nats-test-'));
    let configFile: string | undefined;
    if (options.config) {
      configFile = join(storeDir, 'server.conf');
      writeFileSync(configFile, options.config);
    }
    const server = new NatsServerProcess(binary, options, storeDir, ownsStoreDir, configFile);
    installExitHook();
    started.add(server);
    try {
      await server.launch();
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  get port(): number {
    return this.portValue;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.portValue}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Recent server output, for failure messages. */
  logs(): string {
    return this.output.join('');
  }

  /** Sends a signal (default SIGKILL: a crash) and waits for the process to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.child!.kill(signal);
    await this.exited;
  }

  /** Starts again on the same port and store directory, as a restarted broker would. */
  async restart(): Promise<void> {
    if (this.running) await this.kill('SIGTERM');
    await this.launch();
  }

  /** SIGTERM, then SIGKILL after a deadline; removes the temp store it created. */
  async stop(): Promise<void> {
    if (this.running) {
      const child = this.child!;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await this.exited;
      clearTimeout(timer);
    }
    started.delete(this);
    if (this.ownsStoreDir) rmSync(this.storeDir, { recursive: true, force: true });
  }

  /** @internal exit-hook path: synchronous, best effort. */
  forceKillSync(): void {
    if (this.running) this.child!.kill('SIGKILL');
  }

  private args(): string[] {
    const args = ['-a', '127.0.0.1', '-p', String(this.portValue)];
    if (this.options.jetstream ?? true) args.push('-js', '-sd', join(this.storeDir, 'js'));
    if (this.configFile) args.push('-c', this.configFile);
    args.push(...(this.options.args ?? []));
    return args;
  }

  private launch(): Promise<void> {
    this.output = [];
    const child = spawn(this.binary, this.args(), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolveExit) => child.once('exit', () => resolveExit()));
    return new Promise<void>((resolveReady, rejectReady) => {
      let ready = false;
      const fail = (why: string) => {
        clearTimeout(timer);
        rejectReady(new Error(`nats-server ${why}:\n${this.logs().slice(-4_000)}`));
      };
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        fail(`not ready within ${READY_TIMEOUT_MS} ms`);
      }, READY_TIMEOUT_MS);
      const onData = (chunk: Buffer) => {
        const text = chunk.toString();
        this.output.push(text);
        if (this.output.length > 400) this.output.splice(0, this.output.length - 400);
        const port = /Listening for client connections on [^\s]*:(\d+)/.exec(text);
        if (port) this.portValue = Number(port[1]);
        if (!ready && text.includes('Server is ready')) {
          ready = true;
          clearTimeout(timer);
          resolveReady();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('error', (err) => fail(`could not start (${err.message})`));
      child.once('exit', (code, signal) => {
        if (!ready) fail(`exited before ready (code ${code}, signal ${signal})`);
      });
    });
  }
}

function resolveBinary(): string {
  const r = resolveNatsServer({ ...process.env, NATS_TEST_URL: undefined });
  if (r.kind !== 'binary') throw new Error('No nats-server binary to start (set NATS_SERVER_BIN or put nats-server >= 2.10 on PATH)');
  return r.path;
}

/** A server for a whole test suite: a process it owns, an existing NATS_TEST_URL, or a container. */
export interface NatsTestServer {
  readonly url: string;
  /** Where the server came from: `external` (NATS_TEST_URL), a `binary` it started, a `container`. */
  readonly kind: ServerResolution['kind'];
  /** Which server, said in one line (binary, version and URL, or the external URL); also logged. */
  readonly note: string;
  stop(): Promise<void>;
}

export interface TestServerOptions extends Omit<StartOptions, 'binary'> {
  /**
   * Where the one line naming the chosen server goes; default `console.log`, so a test run
   * always says which server it used. `false` keeps it quiet.
   */
  readonly log?: ((line: string) => void) | false;
}

/**
 * Starts (or finds) a real nats-server with JetStream for a test suite, as `resolveNatsServer`
 * describes (`NATS_TEST_URL`, never `NATS_URL`), and logs which one. The testcontainers branch
 * needs the `testcontainers` package and a Docker engine.
 */
export async function startNatsTestServer(options: TestServerOptions = {}): Promise<NatsTestServer> {
  const { log = (line: string) => console.log(line), ...startOptions } = options;
  const server = await startResolved(resolveNatsServer(), startOptions);
  const described = { ...server, note: `${server.note}${ignoredAppServer(process.env)}` };
  if (log) log(`[nestjs-jetstream/testing] ${described.note}`);
  return described;
}

async function startResolved(resolution: ServerResolution, options: Omit<StartOptions, 'binary'>): Promise<NatsTestServer> {
  if (resolution.kind === 'external') {
    return { url: resolution.url, kind: 'external', note: resolution.note, stop: async () => undefined };
  }
  if (resolution.kind === 'binary') {
    const server = await NatsServerProcess.start({ ...options, binary: resolution.path });
    return { url: server.url, kind: 'binary', note: `${resolution.note}: started on ${server.url} (pid ${server.pid})`, stop: () => server.stop() };
  }
  return startContainer(resolution.note);
}

interface ContainerLike {
  getHost(): string;
  getMappedPort(port: number): number;
  stop(): Promise<unknown>;
}

async function startContainer(note: string): Promise<NatsTestServer> {
  const moduleName = 'testcontainers';
  let tc: { GenericContainer: new (image: string) => { withCommand(c: string[]): { withExposedPorts(p: number): { start(): Promise<ContainerLike> } } } };
  try {
    tc = (await import(moduleName)) as typeof tc;
  } catch (err) {
    throw new Error(`Docker is reachable but the "testcontainers" package is not installed (${(err as Error).message}); npm i -D testcontainers`);
  }
  const container = await new tc.GenericContainer(process.env.NATS_IMAGE ?? 'nats:2.11').withCommand(['-js']).withExposedPorts(4222).start();
  const url = `nats://${container.getHost()}:${container.getMappedPort(4222)}`;
  return {
    url,
    kind: 'container',
    note: `${note}: started at ${url}`,
    stop: async () => void (await container.stop()),
  };
}

/**
 * A JetStream cluster (3 nodes by default) on loopback, for replica and failover tests. Resolves
 * once a stream replicated on every node can be placed (a meta leader alone is not enough).
 */
export async function startCluster(size = 3, readyTimeoutMs = 60_000): Promise<{ servers: NatsServerProcess[]; urls: string[]; stop(): Promise<void> }> {
  // All ports are held open until every one is chosen: closing each before asking for the next
  // lets the OS hand the same port out twice, and two listeners of one cluster then collide.
  const held = await Promise.all(
    Array.from(
      { length: size * 2 },
      () =>
        new Promise<Server>((res, rej) => {
          const srv = createServer();
          srv.once('error', rej);
          srv.listen(0, '127.0.0.1', () => res(srv));
        }),
    ),
  );
  const ports = held.map((srv) => (srv.address() as { port: number }).port);
  await Promise.all(held.map((srv) => new Promise<void>((res) => srv.close(() => res()))));
  const clusterPorts = ports.slice(0, size);
  const clientPorts = ports.slice(size);
  // Nodes start one after another and route to the first (the seed); the others find each
  // other through it. Started all at once with routes to every node, 2.10.27 sometimes formed a
  // cluster whose meta layer never placed a stream again ("no suitable peers for placement"
  // for 45 minutes and counting, R1 creates timing out), seen in CI runs.
  const seed = `nats-route://127.0.0.1:${clusterPorts[0]}`;
  const name = `c${process.pid}${Date.now() % 100000}`;
  const servers: NatsServerProcess[] = [];
  try {
    for (let i = 0; i < size; i++) {
      servers.push(
        await NatsServerProcess.start({
          port: clientPorts[i],
          args: ['--name', `${name}-n${i}`, '--cluster_name', name, '--cluster', `nats://127.0.0.1:${clusterPorts[i]}`, '--routes', seed],
        }),
      );
    }
    await waitUntilPlaceable(servers, name, size, readyTimeoutMs);
  } catch (err) {
    // Nobody else holds these processes: a failed start must not leave them running.
    await Promise.all(servers.map((server) => server.stop()));
    throw err;
  }
  const urls = servers.map((s) => s.url);
  return { servers, urls, stop: async () => void (await Promise.all(servers.map((s) => s.stop()))) };
}

/** Ready means a stream replicated on every node can be placed: a meta leader alone is not. */
async function waitUntilPlaceable(servers: readonly NatsServerProcess[], name: string, size: number, timeoutMs: number): Promise<void> {
  const { connect } = await import('@nats-io/transport-node');
  const nc = await connect({ servers: servers.map((s) => s.url) });
  try {
    const probe = `CLUSTER_READY_${name}`;
    const create = JSON.stringify({ name: probe, subjects: [`${probe}.>`], num_replicas: size, storage: 'memory' });
    const deadline = Date.now() + timeoutMs;
    let last = 'no meta leader yet';
    for (;;) {
      try {
        const reply = (await nc.request(`$JS.API.STREAM.CREATE.${probe}`, create, { timeout: 2_000 })).json<{ error?: { description?: string } }>();
        if (!reply.error) break;
        last = reply.error.description ?? JSON.stringify(reply.error);
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline) {
        const logs = servers.map((server, i) => `--- n${i} ---\n${server.logs().split('\n').slice(-15).join('\n')}`).join('\n');
        throw new Error(`JetStream cluster of ${size} not ready within ${timeoutMs} ms: ${last}\n${logs}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    await nc.request(`$JS.API.STREAM.DELETE.${probe}`, undefined, { timeout: 5_000 });
  } finally {
    await nc.close();
  }
}
