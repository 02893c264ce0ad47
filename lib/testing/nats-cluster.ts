import { createServer, type Server } from 'node:net';
import { NatsServerProcess } from './nats-server-process.js';

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
