import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { startCluster } from '../harness/index.js';
import type { RawClient } from '../integration/kit.js';
import type { WorkerProcess } from './child-app.js';

type Cluster = Awaited<ReturnType<typeof startCluster>>;

/**
 * Three clustered nats-servers for a spec's worker processes: `start()` brings the cluster up and
 * connects a client to all of its nodes; after each test the workers are disposed, then the
 * client closed and the servers stopped. `pinnedGroups` says whether the cluster's servers have
 * priority groups (2.11+), which the exclusive and partitioned scenarios need.
 */
export function clusterScenario(name: string): {
  workers: WorkerProcess[];
  start(): Promise<{ urls: string[]; client: RawClient; pinnedGroups: boolean }>;
} {
  let cluster: Cluster | undefined;
  let client: RawClient | undefined;
  const workers: WorkerProcess[] = [];
  afterEach(async () => {
    await Promise.allSettled(workers.splice(0).map((w) => w.dispose()));
    await client?.close();
    client = undefined;
    await cluster?.stop();
    cluster = undefined;
  });
  return {
    workers,
    async start() {
      cluster = await startCluster(3);
      const nc = await connect({ servers: cluster.urls, name });
      client = { nc, js: jetstream(nc), jsm: await jetstreamManager(nc), close: async () => void (nc.isClosed() || (await nc.close())) };
      const [major, minor] = nc.info!.version.split('.').map(Number);
      return { urls: cluster.urls, client, pinnedGroups: major > 2 || (major === 2 && minor >= 11) };
    },
  };
}
