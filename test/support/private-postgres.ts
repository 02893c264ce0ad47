import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from '../harness/index.js';

/**
 * A PostgreSQL cluster of one test file's own, on a free loopback port, so a test can crash and
 * restart the server itself (`pg_ctl stop -m immediate`, then start: crash recovery from the
 * WAL) without touching the machine's shared server at 127.0.0.1:5432 or anyone else's session.
 *
 * The binaries come from PG_BIN, else the newest /usr/lib/postgresql/<version>/bin (Debian's
 * layout), else `pg_config --bindir`. PostgreSQL refuses to run as root, so as root every
 * command runs as the `postgres` user (runuser) on a data directory that user owns.
 */
export class PrivatePostgres {
  private running = false;

  private constructor(
    private readonly bin: string,
    private readonly dir: string,
    readonly port: number,
    private readonly asUser: string | undefined,
  ) {}

  /** postgres://postgres@127.0.0.1:<port>/postgres, trust auth. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  static async start(bin: string): Promise<PrivatePostgres> {
    const asUser = process.getuid?.() === 0 ? 'postgres' : undefined;
    const dir = mkdtempSync(join(tmpdir(), 'jst-private-pg-'));
    if (asUser) {
      const uid = Number(execFileSync('id', ['-u', asUser]).toString().trim());
      const gid = Number(execFileSync('id', ['-g', asUser]).toString().trim());
      chownSync(dir, uid, gid);
    }
    const cluster = new PrivatePostgres(bin, dir, await freeLoopbackPort(), asUser);
    try {
      await cluster.run('initdb', ['-D', cluster.dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
      await cluster.startServer();
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
    return cluster;
  }

  private get dataDir(): string {
    return join(this.dir, 'data');
  }

  /** The server crashes: every backend is killed at once, nothing is flushed or checkpointed. */
  async crash(): Promise<void> {
    await this.run('pg_ctl', ['stop', '-D', this.dataDir, '-m', 'immediate', '-w']);
    this.running = false;
  }

  /** Starts the server again after a crash; resolves once it accepts connections (after recovery). */
  async restart(): Promise<void> {
    await this.startServer();
  }

  /** Starts the server when a test left it crashed. */
  async ensureRunning(): Promise<void> {
    if (!this.running) await this.startServer();
  }

  /** The server's log, for a failure message. */
  log(): string {
    const file = join(this.dir, 'server.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  async destroy(): Promise<void> {
    if (this.running) await this.run('pg_ctl', ['stop', '-D', this.dataDir, '-m', 'immediate', '-w']).catch(() => undefined);
    this.running = false;
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async startServer(): Promise<void> {
    // The socket directory is the cluster's own, so nothing in /var/run/postgresql is touched.
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${this.dir} -c max_connections=100`;
    await this.run('pg_ctl', ['start', '-D', this.dataDir, '-w', '-t', '120', '-l', join(this.dir, 'server.log'), '-o', options]);
    this.running = true;
  }

  private run(tool: string, args: string[]): Promise<void> {
    const path = join(this.bin, tool);
    const [command, argv] = this.asUser ? ['runuser', ['-u', this.asUser, '--', path, ...args]] : [path, args];
    return new Promise((resolve, reject) => {
      execFile(command, argv, { cwd: this.dir, timeout: 180_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`${tool} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}\n${this.log()}`));
        else resolve();
      });
    });
  }
}

/**
 * Where initdb, pg_ctl and postgres are, or why they are not found. The PostgreSQL-restart
 * scenarios need them; a PGlite-only machine has none.
 */
export function privatePostgresBinaries(): { bin: string } | { missing: string } {
  const has = (dir: string) => ['initdb', 'pg_ctl', 'postgres'].every((tool) => existsSync(join(dir, tool)));
  if (process.env.PG_BIN) return has(process.env.PG_BIN) ? { bin: process.env.PG_BIN } : { missing: `PG_BIN=${process.env.PG_BIN} lacks initdb, pg_ctl or postgres` };
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+$/.test(v) && has(join(root, v, 'bin')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions.length > 0) return { bin: join(root, versions[0], 'bin') };
  }
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    if (has(dir)) return { bin: dir };
  } catch {
    // No pg_config on PATH: reported below.
  }
  return { missing: 'no initdb/pg_ctl/postgres in PG_BIN, /usr/lib/postgresql/<version>/bin or `pg_config --bindir`' };
}

/**
 * `describe` for the PostgreSQL-restart scenarios: runs them when the binaries are there, and
 * otherwise says so on stderr and reports them as skipped, never silently. With
 * REQUIRE_PRIVATE_POSTGRES=1 (CI) missing binaries fail the run instead.
 */
export function describeWithPrivatePostgres(name: string, body: (bin: () => string) => void): void {
  const found = privatePostgresBinaries();
  if ('bin' in found) {
    describe(name, () => body(() => found.bin));
    return;
  }
  if (process.env.REQUIRE_PRIVATE_POSTGRES === '1') {
    describe(name, () => {
      it('needs the PostgreSQL server binaries (REQUIRE_PRIVATE_POSTGRES=1)', () => {
        throw new Error(`cannot run "${name}": ${found.missing}. Install the postgresql package (Debian: apt-get install postgresql) or set PG_BIN.`);
      });
    });
    return;
  }
  process.stderr.write(
    `\n!!! SKIPPED: "${name}" needs the PostgreSQL server binaries to crash and restart a cluster of its own: ${found.missing}.\n` +
      `!!! Install the postgresql package or set PG_BIN to run it (CI sets REQUIRE_PRIVATE_POSTGRES=1, so there it fails instead).\n\n`,
  );
  // Skipped on purpose, and said above on stderr: a machine without the PostgreSQL server
  // binaries (PGlite only) cannot crash and restart a cluster; CI turns this into a failure.
  describe.skip(name, () => body(() => ''));
}
