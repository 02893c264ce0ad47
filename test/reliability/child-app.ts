import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deferred, uniqueName, withDeadline } from '../harness/index.js';
import { createStream, sharedServerHooks, type AppTracker, type RawClient } from '../integration/kit.js';
import { Tally } from './tally.js';

const WORKER = resolve(dirname(fileURLToPath(import.meta.url)), 'apps/worker.mjs');

export interface WorkerConfig {
  readonly servers: string;
  readonly subject: string;
  readonly durable: string;
  readonly ackWaitMs: number;
  readonly concurrency: number;
  readonly shutdownTimeoutMs: number;
  readonly minHandlerMs: number;
  readonly maxHandlerMs: number;
  /** At-least-once unless set. */
  readonly delivery?: 'at-least-once' | 'exactly-once';
  /** A batch handler with these limits instead of a per-message one. */
  readonly batch?: { readonly maxMessages: number; readonly maxWaitMs: number };
  /** One instance at a time consumes the durable (pinned_client). */
  readonly exclusive?: boolean;
  /** A partitioned consumer group (`@OnEvent` option `partitions`). */
  readonly partitions?: { readonly count: number; readonly key?: number; readonly memberTtlMs?: number; readonly pinnedTtlMs?: number };
  /** Shifts the worker's wall clock (Date.now) by this much: a machine whose clock is off. */
  readonly clockSkewMs?: number;
  /** The handler fails (after its sleep) on a message's first delivery; journaled as `fail`. */
  readonly failFirstDelivery?: boolean;
  /** Idempotency bucket (module option `idempotency.bucket`), when not the default. */
  readonly bucket?: string;
}

/** One line the worker appended: a handler call beginning or finishing. */
export interface WorkerLine {
  readonly kind: 'start' | 'done' | 'fail';
  readonly id: string;
  readonly delivery: number;
  readonly at: number;
}

export interface WorkerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Epoch ms. */
  readonly at: number;
}

/**
 * The app of `apps/worker.mjs` in a child process this test owns (killed only by its pid), with
 * the journal of its handler calls.
 */
export class WorkerProcess {
  private readonly output: string[] = [];
  private readonly exit = deferred<WorkerExit>();

  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly journal: string,
  ) {
    child.once('exit', (code, signal) => this.exit.resolve({ code, signal, at: Date.now() }));
    const collect = (chunk: Buffer) => {
      this.output.push(chunk.toString());
      if (this.output.length > 200) this.output.splice(0, this.output.length - 200);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
  }

  /** Starts the worker and resolves once its consumer runs (it printed WORKER READY). */
  static async start(config: WorkerConfig): Promise<WorkerProcess> {
    const dir = mkdtempSync(join(tmpdir(), 'reliability-worker-'));
    const journal = join(dir, 'journal.log');
    const child = spawn(process.execPath, [WORKER], {
      env: { ...process.env, NODE_OPTIONS: '', WORKER_CONFIG: JSON.stringify({ ...config, out: journal }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const worker = new WorkerProcess(child, dir, journal);
    const ready = deferred<void>();
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('WORKER READY')) ready.resolve();
    });
    void worker.exit.promise.then((e) => ready.reject(new Error(`worker exited before ready (code ${e.code}, signal ${e.signal}):\n${worker.logs()}`)));
    try {
      await withDeadline(ready.promise, 20_000, 'the worker to start');
    } catch (err) {
      await worker.dispose();
      throw err;
    }
    return worker;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get exited(): Promise<WorkerExit> {
    return this.exit.promise;
  }

  logs(): string {
    return this.output.join('');
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Every handler line so far (complete lines only: a kill may cut the last one short). */
  lines(): WorkerLine[] {
    if (!existsSync(this.journal)) return [];
    const out: WorkerLine[] = [];
    for (const text of readFileSync(this.journal, 'utf8').split('\n')) {
      const m = /^(start|done|fail) (\S+) (\d+) (\d+)$/.exec(text);
      if (m) out.push({ kind: m[1] as WorkerLine['kind'], id: m[2], delivery: Number(m[3]), at: Number(m[4]) });
    }
    return out;
  }

  /** Ids whose handler call began and has not (yet) finished, per the journal. */
  inFlight(lines = this.lines()): string[] {
    const open = new Map<string, number>();
    for (const l of lines) open.set(l.id, (open.get(l.id) ?? 0) + (l.kind === 'start' ? 1 : -1));
    return [...open].filter(([, n]) => n > 0).map(([id]) => id);
  }

  /** Kills it if still running (SIGKILL, by pid) and removes its directory. */
  async dispose(): Promise<void> {
    if (this.running) {
      this.child.kill('SIGKILL');
      await this.exit.promise;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Hooks of a spec whose apps run in child processes against the shared server: a raw client for
 * setup, and every worker and in-process app disposed after each test whatever failed.
 */
export function workerScenario(): { apps: AppTracker; workers: WorkerProcess[]; client(): RawClient } {
  const shared = sharedServerHooks();
  const workers: WorkerProcess[] = [];
  afterEach(async () => {
    await Promise.allSettled(workers.splice(0).map((w) => w.dispose()));
  });
  return { apps: shared.apps, workers, client: () => shared.client };
}

/**
 * A fresh stream filled with `count` messages, one per id (msg-id = id), each counted as
 * published, and a durable name for the scenario's workers.
 */
export async function prefilledStream(
  client: RawClient,
  prefix: string,
  count: number,
): Promise<{ stream: string; subject: string; durable: string; ids: string[]; tally: Tally }> {
  const stream = uniqueName(prefix.toUpperCase());
  const subject = `${stream}.evt`;
  await createStream(client.jsm, stream, [`${stream}.>`]);
  const tally = new Tally();
  const ids = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  for (let i = 0; i < ids.length; i += 100) {
    await Promise.all(ids.slice(i, i + 100).map((id) => client.js.publish(subject, JSON.stringify({ id }), { msgID: id })));
  }
  for (const id of ids) tally.confirmPublished(id);
  return { stream, subject, durable: uniqueName(prefix), ids, tally };
}
