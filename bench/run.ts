import 'reflect-metadata';
import { existsSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { startBenchServer } from './bench-server.js';
import { meterServer } from './support.js';
import { environment, publish } from './report.js';
import { ROUNDS, wanted, type BenchContext } from './support.js';
import { batchWorkload } from './workloads/batch.js';
import { codecsWorkload } from './workloads/codecs.js';
import { consumeWorkload } from './workloads/consume.js';
import { inboxWorkload } from './workloads/inbox.js';
import { latencyWorkload } from './workloads/latency.js';
import { memoryWorkload } from './workloads/memory.js';
import { modesWorkload } from './workloads/modes.js';
import { outboxWorkload } from './workloads/outbox.js';
import { outboxMemoryWorkload } from './workloads/outbox-memory.js';
import { publishWorkload } from './workloads/publish.js';
import { atomicBatchWorkload } from './workloads/atomic-batch.js';
import { recordsWorkload } from './workloads/records.js';
import { slowWorkload } from './workloads/slow.js';
import { partitionsWorkload } from './workloads/partitions.js';

/**
 * Side-by-side benchmarks: every contender (`@nats-io/jetstream` tuned as the module tunes it,
 * the same client as its docs show, this module, and the
 * `@nestjs-plugins/nestjs-nats-jetstream-transport` peer) runs in the same process against the
 * same throwaway server; after a warm-up round, rounds alternate between contenders in a rotating
 * order, and the table prints medians, min-max and ratios against the tuned client. Nothing here asserts; the numbers are for the README and for spotting regressions.
 *
 *   npm run bench                                  # everything, default sizes
 *   BENCH_ONLY=consume,publish npm run bench       # some workloads
 *   BENCH_CONTENDERS=tuned,module npm run bench    # skip the docs example and the peer
 *   BENCH_ROUNDS=5 BENCH_CONSUME=50000 npm run bench
 */
const WORKLOADS: Array<[string, (ctx: BenchContext) => Promise<void>]> = [
  ['consume', consumeWorkload],
  ['slow', slowWorkload],
  ['publish', publishWorkload],
  ['atomic', atomicBatchWorkload],
  ['latency', latencyWorkload],
  ['modes', modesWorkload],
  ['records', recordsWorkload],
  ['memory', memoryWorkload],
  ['codecs', codecsWorkload],
  ['partitions', partitionsWorkload],
  ['batch', batchWorkload],
  ['outbox', outboxWorkload],
  ['inbox', inboxWorkload],
  ['outbox-memory', outboxMemoryWorkload],
];

async function main(): Promise<void> {
  const binary =
    process.env.NATS_SERVER_BIN ?? (existsSync('.cache/nats-server/bin/nats-server') ? '.cache/nats-server/bin/nats-server' : 'nats-server');
  const server = process.env.NATS_URL ? undefined : await startBenchServer(binary);
  const url = process.env.NATS_URL ?? server!.url;
  meterServer(server?.pid);
  const nc = await connect({ servers: url });
  const ctx: BenchContext = { url, nc, js: jetstream(nc), jsm: await jetstreamManager(nc) };
  try {
    for (const [name, run] of WORKLOADS) {
      if (!wanted(name)) continue;
      process.stderr.write(`${name}\n`);
      await run(ctx);
    }
    publish(environment(nc.info?.version ?? 'unknown', ROUNDS));
  } finally {
    await nc.close();
    await server?.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
