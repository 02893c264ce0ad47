import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { startCluster, uniqueName } from '../harness/index.js';
import type { RawClient } from '../integration/kit.js';
import type { WorkerProcess } from './child-app.js';
import { exclusiveKillScenario } from './exclusive-scenario.js';

const COUNT = 600;
const ACK_WAIT_MS = 2_000;
// The default pinned TTL.
const PINNED_TTL_MS = 5_000;

type Cluster = Awaited<ReturnType<typeof startCluster>>;

/**
 * The exclusive (pinned) consumer's SIGKILL scenario of test/integration/exclusive-consumer.spec.ts
 * on three clustered nats-servers: an R3 stream, so an R3 consumer, and the three worker
 * processes each on another node, so the pin moves between clients of different servers.
 * Needs nats-server 2.11+ (priority groups); the refusal on older servers is tested there.
 */
describe('reliability: exclusive consumer on a 3-node cluster', () => {
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

  it(`3 processes on different nodes, ${COUNT} messages, the pinned one SIGKILLed: handled sequence strictly increasing, no gaps, a survivor takes over`, async () => {
    cluster = await startCluster(3);
    const urls = cluster.urls;
    const nc = await connect({ servers: urls, name: 'exclusive-cluster-client' });
    client = { nc, js: jetstream(nc), jsm: await jetstreamManager(nc), close: async () => void (nc.isClosed() || (await nc.close())) };
    const [major, minor] = nc.info!.version.split('.').map(Number);
    if (major === 2 && minor < 11) return;
    const stream = uniqueName('EXCLUSTER');
    const subject = `${stream}.evt`;
    await client.jsm.streams.add({ name: stream, subjects: [`${stream}.>`], num_replicas: 3, storage: StorageType.File });
    const ids = Array.from({ length: COUNT }, (_, i) => `excluster-${i}`);
    for (let i = 0; i < ids.length; i += 100) {
      await Promise.all(ids.slice(i, i + 100).map((id) => client!.js.publish(subject, JSON.stringify({ id }), { msgID: id })));
    }
    const { takeoverMs, duplicates } = await exclusiveKillScenario(client, workers, {
      stream,
      subject,
      durable: uniqueName('excluster'),
      count: COUNT,
      servers: (i) => urls[i % urls.length],
      ackWaitMs: ACK_WAIT_MS,
      waitMs: 60_000,
    });
    // The pin moves after the TTL from the killed instance's last pull; slack for a loaded machine.
    expect(takeoverMs).toBeLessThan(PINNED_TTL_MS + 15_000);
    console.log(`exclusive SIGKILL takeover (3-node cluster): ${takeoverMs} ms after the kill (pinned TTL ${PINNED_TTL_MS} ms), ${duplicates} handled again`);
  }, 180_000);
});
