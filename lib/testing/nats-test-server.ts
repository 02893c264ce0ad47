import { startContainer } from './nats-container.js';
import { ignoredAppServer, resolveNatsServer, type ServerResolution } from './nats-server-binary.js';
import { NatsServerProcess, type StartOptions } from './nats-server-process.js';

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
