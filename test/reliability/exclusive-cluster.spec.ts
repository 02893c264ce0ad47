import { StorageType } from '@nats-io/jetstream';
import { uniqueName } from '../harness/index.js';
import { clusterScenario } from './cluster-scenario.js';
import { exclusiveKillScenario } from './exclusive-scenario.js';

const COUNT = 600;
const ACK_WAIT_MS = 2_000;
// The default pinned TTL.
const PINNED_TTL_MS = 5_000;

/**
 * The exclusive (pinned) consumer's SIGKILL scenario of test/integration/exclusive-consumer.spec.ts
 * on three clustered nats-servers: an R3 stream, so an R3 consumer, and the three worker
 * processes each on another node, so the pin moves between clients of different servers.
 * Needs nats-server 2.11+ (priority groups); the refusal on older servers is tested there.
 */
describe('reliability: exclusive consumer on a 3-node cluster', () => {
  const { workers, start } = clusterScenario('exclusive-cluster-client');

  it(`3 processes on different nodes, ${COUNT} messages, the pinned one SIGKILLed: handled sequence strictly increasing, no gaps, a survivor takes over`, async () => {
    const { urls, client, pinnedGroups } = await start();
    if (!pinnedGroups) return;
    const stream = uniqueName('EXCLUSTER');
    const subject = `${stream}.evt`;
    await client.jsm.streams.add({ name: stream, subjects: [`${stream}.>`], num_replicas: 3, storage: StorageType.File });
    const ids = Array.from({ length: COUNT }, (_, i) => `excluster-${i}`);
    for (let i = 0; i < ids.length; i += 100) {
      await Promise.all(ids.slice(i, i + 100).map((id) => client.js.publish(subject, JSON.stringify({ id }), { msgID: id })));
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
