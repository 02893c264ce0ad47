import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const CACHED_BINARY = join(REPO_ROOT, '.cache/nats-server/bin/nats-server');
const READY_TIMEOUT_MS = 15_000;
/** `nats-server: v2.15.1` → 2.15.1; undefined when the output is not a version line. */
export function parseNatsServerVersion(output) {
    const m = /v(\d+)\.(\d+)\.(\d+)/.exec(output);
    if (!m)
        return undefined;
    return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), text: `${m[1]}.${m[2]}.${m[3]}` };
}
/** The floor this project supports: 2.10 (consumer create/update actions, term reasons from 2.10.4). */
export function isSupportedVersion(v) {
    return v.major > 2 || (v.major === 2 && v.minor >= 10);
}
function binaryVersion(path) {
    const out = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    if (out.error || out.status !== 0)
        return undefined;
    return parseNatsServerVersion(`${out.stdout}${out.stderr}`);
}
function onPath() {
    const out = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
    const path = out.stdout.trim();
    return out.status === 0 && path ? path : undefined;
}
/**
 * Where the tests get their broker, in order: NATS_URL (an existing server), NATS_SERVER_BIN,
 * the binary `npm run nats:install` caches, `nats-server` on PATH. Binaries older than 2.10
 * are refused. There is no silent skip: no server means a loud failure.
 */
export function resolveNatsServer(env = process.env) {
    if (env.NATS_URL) {
        return { kind: 'external', url: env.NATS_URL, note: `using the existing server at NATS_URL (${redact(env.NATS_URL)})` };
    }
    const rejected = [];
    const candidates = [
        [env.NATS_SERVER_BIN, 'NATS_SERVER_BIN'],
        [existsSync(CACHED_BINARY) ? CACHED_BINARY : undefined, '.cache (npm run nats:install)'],
        [onPath(), 'PATH'],
    ];
    for (const [path, source] of candidates) {
        if (!path)
            continue;
        const version = binaryVersion(path);
        if (!version) {
            rejected.push(`${path} (${source}): does not run or reports no version`);
            continue;
        }
        if (!isSupportedVersion(version)) {
            rejected.push(`${path} (${source}): v${version.text} is older than 2.10`);
            continue;
        }
        return { kind: 'binary', path, version, note: `using ${path} v${version.text} (from ${source})` };
    }
    throw new Error([
        'No nats-server >= 2.10 for the tests. Broker tests never run against mocks, so the suite stops here.',
        ...rejected.map((r) => `  rejected: ${r}`),
        'Fix: run `npm run nats:install` (downloads a newer Debian package into .cache/), or set',
        'NATS_SERVER_BIN to a nats-server >= 2.10, or NATS_URL to a running server >= 2.10 with JetStream.',
    ].join('\n'));
}
function redact(url) {
    return url.replace(/\/\/[^@/]*@/g, '//***@');
}
const started = new Set();
let exitHookInstalled = false;
function installExitHook() {
    if (exitHookInstalled)
        return;
    exitHookInstalled = true;
    // A test that forgot stop() or a crashed worker must not leave servers running.
    process.on('exit', () => {
        for (const server of started)
            server.forceKillSync();
    });
}
/** A nats-server process this test run started and owns: only these are ever killed. */
export class NatsServerProcess {
    binary;
    options;
    storeDir;
    ownsStoreDir;
    configFile;
    child;
    output = [];
    exited;
    portValue;
    constructor(binary, options, storeDir, ownsStoreDir, configFile) {
        this.binary = binary;
        this.options = options;
        this.storeDir = storeDir;
        this.ownsStoreDir = ownsStoreDir;
        this.configFile = configFile;
        this.portValue = options.port ?? -1;
    }
    static async start(options = {}) {
        const binary = options.binary ?? resolveBinary();
        const ownsStoreDir = !options.storeDir;
        const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), 'nats-test-'));
        let configFile;
        if (options.config) {
            configFile = join(storeDir, 'server.conf');
            writeFileSync(configFile, options.config);
        }
        const server = new NatsServerProcess(binary, options, storeDir, ownsStoreDir, configFile);
        installExitHook();
        started.add(server);
        try {
            await server.launch();
        }
        catch (err) {
            await server.stop();
            throw err;
        }
        return server;
    }
    get port() {
        return this.portValue;
    }
    get url() {
        return `nats://127.0.0.1:${this.portValue}`;
    }
    get pid() {
        return this.child?.pid;
    }
    get running() {
        return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
    }
    /** Recent server output, for failure messages. */
    logs() {
        return this.output.join('');
    }
    /** Sends a signal (default SIGKILL: a crash) and waits for the process to exit. */
    async kill(signal = 'SIGKILL') {
        if (!this.running)
            return;
        this.child.kill(signal);
        await this.exited;
    }
    /** Starts again on the same port and store directory, as a restarted broker would. */
    async restart() {
        if (this.running)
            await this.kill('SIGTERM');
        await this.launch();
    }
    /** SIGTERM, then SIGKILL after a deadline; removes the temp store it created. */
    async stop() {
        if (this.running) {
            const child = this.child;
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
            await this.exited;
            clearTimeout(timer);
        }
        started.delete(this);
        if (this.ownsStoreDir)
            rmSync(this.storeDir, { recursive: true, force: true });
    }
    /** @internal exit-hook path: synchronous, best effort. */
    forceKillSync() {
        if (this.running)
            this.child.kill('SIGKILL');
    }
    args() {
        const args = ['-a', '127.0.0.1', '-p', String(this.portValue)];
        if (this.options.jetstream ?? true)
            args.push('-js', '-sd', join(this.storeDir, 'js'));
        if (this.configFile)
            args.push('-c', this.configFile);
        args.push(...(this.options.args ?? []));
        return args;
    }
    launch() {
        this.output = [];
        const child = spawn(this.binary, this.args(), { stdio: ['ignore', 'pipe', 'pipe'] });
        this.child = child;
        this.exited = new Promise((resolveExit) => child.once('exit', () => resolveExit()));
        return new Promise((resolveReady, rejectReady) => {
            const fail = (why) => {
                clearTimeout(timer);
                rejectReady(new Error(`nats-server ${why}:\n${this.logs().slice(-4_000)}`));
            };
            const timer = setTimeout(() => {
                child.kill('SIGKILL');
                fail(`not ready within ${READY_TIMEOUT_MS} ms`);
            }, READY_TIMEOUT_MS);
            const onData = (chunk) => {
                const text = chunk.toString();
                this.output.push(text);
                if (this.output.length > 400)
                    this.output.splice(0, this.output.length - 400);
                const port = /Listening for client connections on [^\s]*:(\d+)/.exec(text);
                if (port)
                    this.portValue = Number(port[1]);
                if (text.includes('Server is ready')) {
                    clearTimeout(timer);
                    resolveReady();
                }
            };
            child.stdout.on('data', onData);
            child.stderr.on('data', onData);
            child.once('error', (err) => fail(`could not start (${err.message})`));
            child.once('exit', (code, signal) => {
                if (!this.output.join('').includes('Server is ready'))
                    fail(`exited before ready (code ${code}, signal ${signal})`);
            });
        });
    }
}
function resolveBinary() {
    const r = resolveNatsServer({ ...process.env, NATS_URL: undefined });
    if (r.kind !== 'binary')
        throw new Error('no nats-server binary to start');
    return r.path;
}
/**
 * A 3-node (by default) JetStream cluster on loopback, for replica and failover tests. Returns
 * once the servers answer JetStream API requests, i.e. a meta leader exists.
 */
export async function startCluster(size = 3) {
    const { createServer } = await import('node:net');
    const freePort = () => new Promise((res, rej) => {
        const srv = createServer();
        srv.once('error', rej);
        srv.listen(0, '127.0.0.1', () => {
            const port = srv.address().port;
            srv.close(() => res(port));
        });
    });
    const clusterPorts = [];
    const clientPorts = [];
    for (let i = 0; i < size; i++) {
        clusterPorts.push(await freePort());
        clientPorts.push(await freePort());
    }
    const routes = clusterPorts.map((p) => `nats-route://127.0.0.1:${p}`).join(',');
    const name = `c${process.pid}${Date.now() % 100000}`;
    const servers = await Promise.all(clusterPorts.map((clusterPort, i) => NatsServerProcess.start({
        port: clientPorts[i],
        args: ['--name', `${name}-n${i}`, '--cluster_name', name, '--cluster', `nats://127.0.0.1:${clusterPort}`, '--routes', routes],
    })));
    const urls = servers.map((s) => s.url);
    const { connect } = await import('@nats-io/transport-node');
    const nc = await connect({ servers: urls });
    try {
        const deadline = Date.now() + 30_000;
        for (;;) {
            try {
                const reply = await nc.request('$JS.API.INFO', undefined, { timeout: 1_000 });
                const info = reply.json();
                if (!info.error)
                    break;
            }
            catch {
                // no meta leader yet
            }
            if (Date.now() > deadline)
                throw new Error('JetStream cluster did not elect a meta leader within 30 s');
            await new Promise((r) => setTimeout(r, 250));
        }
    }
    finally {
        await nc.close();
    }
    return { servers, urls, stop: async () => void (await Promise.all(servers.map((s) => s.stop()))) };
}
