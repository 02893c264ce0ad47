import 'reflect-metadata';
import { Injectable, type Type } from '@nestjs/common';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { startCluster, uniqueName, withDeadline, waitFor } from '../harness/index.js';
import { OnEvent, type OnEventOptions } from '../../lib/index.js';
import { CapturingLogger } from '../support/test-app.js';
import { AppTracker, handlerClass, type RawClient } from '../integration/kit.js';
import { describeErrors, startPublishLoop } from './publish-loop.js';
import { scale } from './report.js';
import { Tally } from './tally.js';

const COUNT = scale(1_500, 20_000);
// startCluster may wait up to 60 s for the cluster to accept an R3 stream (see there).
const TEST_TIMEOUT_MS = scale(180_000, 600_000);

type Cluster = Awaited<ReturnType<typeof startCluster>>;

/**
 * Three nats-servers clustered on loopback, a stream with three replicas. The stream leader is
 * SIGKILLed mid-stream, and the app is connected to exactly that node: it must move to one of
 * the others by itself, the replicas elect a new leader, and nothing may be lost.
 */
describe('reliability: cluster failover (3 nodes, R3 stream, leader killed)', () => {
  const apps = new AppTracker();
  let cluster: Cluster | undefined;
  let client: RawClient | undefined;

  afterEach(async () => {
    await client?.close();
    client = undefined;
    await apps.closeAll();
    await cluster?.stop();
    cluster = undefined;
  });

  /** The test's own view of the cluster, on every node so that it survives the kill too. */
  async function openClusterClient(urls: string[]): Promise<RawClient> {
    const nc = await connect({ servers: urls, name: 'reliability-cluster-client' });
    return {
      nc,
      js: jetstream(nc),
      jsm: await jetstreamManager(nc),
      close: async () => {
        if (!nc.isClosed()) await nc.close();
      },
    };
  }

  /** The harness names nodes `<cluster>-n<index>`, in the order of `cluster.servers`. */
  function nodeIndex(serverName: string | undefined): number {
    const m = /-n(\d+)$/.exec(serverName ?? '');
    if (!m) throw new Error(`unexpected server name ${serverName}`);
    return Number(m[1]);
  }

  /** The handler under test: one message a call, or a batch handler (issue 16's proof on a cluster). */
  function failoverHandler(kind: 'per-message' | 'batch', subject: string, durable: string, handle: (id: string) => void): Type<unknown> {
    const options: OnEventOptions = { durable, concurrency: kind === 'batch' ? 2 : 8, ackWaitMs: 5_000 };
    if (kind === 'per-message') return handlerClass('FailoverHandler', subject, options, (payload) => handle((payload as { id: string }).id));
    @Injectable()
    class FailoverBatchHandler {
      @OnEvent(subject, { ...options, batch: { maxMessages: 50, maxWaitMs: 50 } })
      async handle(payloads: Array<{ id: string }>): Promise<void> {
        for (const p of payloads) handle(p.id);
      }
    }
    return FailoverBatchHandler;
  }

  it.each(['per-message', 'batch'] as const)('the app reconnects to the surviving nodes and every published message is handled (%s handler)', async (kind) => {
    cluster = await startCluster(3);
    const nodes = cluster;
    client = await openClusterClient(nodes.urls);
    const raw = client;
    const stream = uniqueName('FAILOVER');
    const subject = `${stream}.evt`;
    const durable = uniqueName('failover');
    await raw.jsm.streams.add({ name: stream, subjects: [`${stream}.>`], num_replicas: 3, storage: StorageType.File });
    const leaderName = (await raw.jsm.streams.info(stream)).cluster?.leader;
    const leader = nodeIndex(leaderName);

    const tally = new Tally();
    let calls = 0;
    const logger = new CapturingLogger();
    // Connected to the leader's node first, so killing the leader also takes the app's server away.
    const servers = [nodes.urls[leader], ...nodes.urls.filter((_, i) => i !== leader)];
    const app = await apps.start(
      {
        servers,
        connection: { noRandomize: true },
        publishTimeoutMs: 2_000,
        publishRetries: 2,
        shutdownTimeoutMs: 2_000,
      },
      [
        failoverHandler(kind, subject, durable, (id) => {
          calls++;
          tally.handle(id);
        }),
      ],
      logger,
    );
    expect(app.connection.nc.info?.server_name).toBe(leaderName);

    const ids = Array.from({ length: COUNT }, (_, i) => `c-${i}`);
    const loop = startPublishLoop(ids, (id) => app.publisher.publish(subject, { id }, { msgId: id }), {
      lanes: 8,
      ratePerSecond: 1_000,
      retryPauseMs: 200,
      onStored: (id) => tally.confirmPublished(id),
    });
    try {
      await waitFor(() => tally.publishedCount >= COUNT / 3 && tally.handledCount > 0, {
        timeoutMs: 30_000,
        message: () => `never reached a third of the stream: ${tally.describe()}`,
      });
      const publishedAtKill = tally.publishedCount;
      const killedAt = Date.now();
      await nodes.servers[leader].kill('SIGKILL');

      let newLeader: string | undefined;
      await waitFor(
        async () => {
          newLeader = (await raw.jsm.streams.info(stream)).cluster?.leader;
          return newLeader !== undefined && newLeader !== leaderName;
        },
        { timeoutMs: 30_000, intervalMs: 100, message: 'no new stream leader among the surviving nodes' },
      );

      await withDeadline(loop.done, 60_000, `publishing after the failover (${describeErrors(loop.stats)})`);
      await waitFor(() => tally.complete(), { timeoutMs: 60_000, message: () => `consumers did not catch up: ${tally.describe()}` });
      const handledAllMs = Date.now() - killedAt;
      await waitFor(
        async () => {
          const info = await raw.jsm.consumers.info(stream, durable);
          return info.num_pending === 0 && info.num_ack_pending === 0;
        },
        { timeoutMs: 30_000, message: () => `consumer never settled: ${tally.describe()}` },
      );
      const streamInfo = await raw.jsm.streams.info(stream);

      // The app left the dead node for a surviving one.
      expect(app.connection.nc.info?.server_name).not.toBe(leaderName);
      expect(logger.find('Reconnected').length).toBeGreaterThan(0);
      expect(streamInfo.state.messages).toBe(COUNT);
      expect(tally.publishedCount).toBe(COUNT);
      expect(tally.unexpected()).toEqual([]);
      expect(tally.lost()).toEqual([]);
      // A leaderless stream is a transient fault, reported as one: never as "no stream captures
      // the subject", which a caller would rightly treat as a configuration error and give up.
      expect([...loop.stats.errors.keys()].filter((name) => name !== 'PublishTimeoutError' && name !== 'StreamUnavailableError')).toEqual([]);

      const dups = tally.duplicates().length;
      tally.record(
        `cluster: stream leader killed (3 nodes, R3), at-least-once${kind === 'batch' ? ', batch handler of 50' : ''}`,
        `a surviving node took the lead and the app moved to one; publishes that errored were re-published with the same msg-id; stream holds ${streamInfo.state.messages}`,
        {
          duplicatesVary: true,
          measured:
            `killed at ${publishedAtKill}/${COUNT} published; leader ${leaderName} -> ${newLeader}, app moved to ${app.connection.nc.info?.server_name}; ` +
            `publishes failed until ${(((loop.stats.lastErrorAt ?? killedAt) - killedAt) / 1000).toFixed(1)} s after the kill, all handled after ${(handledAllMs / 1000).toFixed(1)} s; ` +
            `${loop.errorCount()} publish calls errored (${describeErrors(loop.stats)}), ${loop.stats.storedAsDuplicate} re-publishes answered "duplicate"; ` +
            `${calls} ${kind === 'batch' ? 'messages through batch calls' : 'handler calls'}${dups > 0 ? ` (${dups} redelivered)` : ''}`,
        },
      );
    } finally {
      loop.stop();
    }
  }, TEST_TIMEOUT_MS);
});
