import { StorageType } from '@nats-io/jetstream';
import { uniqueName, waitFor } from '../harness/index.js';
import { clusterScenario } from './cluster-scenario.js';
import { expectPartitionedGuarantees, publishKeyed, runPartitioned } from './partitioned-scenario.js';
import { scale } from './report.js';

const KEYS = 1_000;
const MESSAGES = scale(6_000, 20_000);
const CONCURRENCY = 4;

/**
 * The partitioned scenario of test/integration/partitioned-consumers.spec.ts on three clustered
 * nats-servers: R3 source stream, so an R3 group stream and KV bucket, the workers spread over
 * the nodes. Needs nats-server 2.11+ (priority groups); on an older binary it has nothing to prove.
 */
describe('reliability: partitioned consumer group on a 3-node cluster', () => {
  const { workers, start } = clusterScenario('partitioned-cluster-client');

  it(`3 processes on different nodes, ${KEYS} keys, ${MESSAGES} messages; a fourth joins, then one is SIGKILLed: every key in order, nothing lost`, async () => {
    const { urls, client, pinnedGroups } = await start();
    if (!pinnedGroups) return;
    const stream = uniqueName('PTCLUSTER');
    const durable = uniqueName('cluster');
    await client.jsm.streams.add({ name: stream, subjects: [`${stream}.>`], num_replicas: 3, storage: StorageType.File });
    await publishKeyed(client, stream, KEYS, MESSAGES);
    const outcome = await runPartitioned(
      client,
      stream,
      durable,
      { keys: KEYS, messages: MESSAGES, partitions: 12, concurrency: CONCURRENCY, servers: (i) => urls[i % urls.length], ackWaitMs: 2_000, memberTtlMs: 3_000, pinnedTtlMs: 3_000, deadlineMs: scale(120_000, 400_000) },
      workers,
    );
    console.log(`partitioned run (3-node cluster): ${JSON.stringify(outcome)}`);
    const group = await client.jsm.streams.info(`${stream}-${durable}`);
    expect(group.config.num_replicas).toBe(3);
    expectPartitionedGuarantees(outcome, CONCURRENCY);
    await waitFor(async () => (await client.jsm.streams.info(`${stream}-${durable}`)).state.messages === 0, { timeoutMs: 20_000, message: 'every partition acked' });
  }, scale(240_000, 900_000));
});
