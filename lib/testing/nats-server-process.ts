import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveBinary } from './nats-server-binary.js';

const READY_TIMEOUT_MS = 15_000;

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
