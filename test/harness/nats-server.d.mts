export interface ServerVersion {
    readonly major: number;
    readonly minor: number;
    readonly patch: number;
    readonly text: string;
}
/** `nats-server: v2.15.1` → 2.15.1; undefined when the output is not a version line. */
export declare function parseNatsServerVersion(output: string): ServerVersion | undefined;
/** The floor this project supports: 2.10 (consumer create/update actions, term reasons from 2.10.4). */
export declare function isSupportedVersion(v: ServerVersion): boolean;
export type ServerResolution = {
    readonly kind: 'external';
    readonly url: string;
    readonly note: string;
} | {
    readonly kind: 'binary';
    readonly path: string;
    readonly version: ServerVersion;
    readonly note: string;
};
/**
 * Where the tests get their broker, in order: NATS_URL (an existing server), NATS_SERVER_BIN,
 * the binary `npm run nats:install` caches, `nats-server` on PATH. Binaries older than 2.10
 * are refused. There is no silent skip: no server means a loud failure.
 */
export declare function resolveNatsServer(env?: NodeJS.ProcessEnv): ServerResolution;
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
/** A nats-server process this test run started and owns: only these are ever killed. */
export declare class NatsServerProcess {
    private readonly binary;
    private readonly options;
    readonly storeDir: string;
    private readonly ownsStoreDir;
    private readonly configFile;
    private child?;
    private output;
    private exited?;
    private portValue;
    private constructor();
    static start(options?: StartOptions): Promise<NatsServerProcess>;
    get port(): number;
    get url(): string;
    get pid(): number | undefined;
    get running(): boolean;
    /** Recent server output, for failure messages. */
    logs(): string;
    /** Sends a signal (default SIGKILL: a crash) and waits for the process to exit. */
    kill(signal?: NodeJS.Signals): Promise<void>;
    /** Starts again on the same port and store directory, as a restarted broker would. */
    restart(): Promise<void>;
    /** SIGTERM, then SIGKILL after a deadline; removes the temp store it created. */
    stop(): Promise<void>;
    /** @internal exit-hook path: synchronous, best effort. */
    forceKillSync(): void;
    private args;
    private launch;
}
/**
 * A 3-node (by default) JetStream cluster on loopback, for replica and failover tests. Returns
 * once the servers answer JetStream API requests, i.e. a meta leader exists.
 */
export declare function startCluster(size?: number): Promise<{
    servers: NatsServerProcess[];
    urls: string[];
    stop(): Promise<void>;
}>;
