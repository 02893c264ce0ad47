import 'reflect-metadata';
import { withOutboxBench } from './outbox-setup.js';
import { PAYLOAD, PUBLISH_WINDOW } from './support.js';
import { latency, median, N, publishRound, RATE, relayRound, ROUNDS, SECONDS } from './outbox-rounds.js';

/**
 * `bench/outbox-rounds.ts` on its own, printing its table (the `outbox` workload of `npm run
 * bench` runs the same rounds into the results table):
 *
 *   npm run bench:outbox
 *   BENCH_OUTBOX_N=20000 BENCH_OUTBOX_RATE=1000 BENCH_OUTBOX_SECONDS=10 npm run bench:outbox
 *   BENCH_OUTBOX_RELAY='{"batchSize":256}' npm run bench:outbox    # other relay options
 */
async function main(): Promise<void> {
  const url = process.env.DATABASE_URL;
  const kind = url ? 'PostgreSQL (DATABASE_URL)' : 'PGlite (in-process)';
  await withOutboxBench(url, async ({ server, nc, jsm, db, schema }) => {
    const relay: number[] = [];
    const publish: number[] = [];
    await relayRound(server.url, db, jsm, schema); // warm-up
    await publishRound(server.url, jsm, db, schema);
    for (let r = 0; r < ROUNDS; r++) {
      // Rotated order: neither side always runs on a warmer process.
      if (r % 2 === 0) {
        relay.push(await relayRound(server.url, db, jsm, schema));
        publish.push(await publishRound(server.url, jsm, db, schema));
      } else {
        publish.push(await publishRound(server.url, jsm, db, schema));
        relay.push(await relayRound(server.url, db, jsm, schema));
      }
    }
    const lat = await latency(server.url, db, jsm, schema);
    const ratio = median(relay) / median(publish);
    const fmt = (xs: number[]) => `${Math.round(median(xs))} msg/s (min ${Math.round(Math.min(...xs))}, max ${Math.round(Math.max(...xs))})`;
    console.log(`outbox bench: ${kind}, nats-server ${nc.info?.version}, node ${process.version}, ${ROUNDS} rounds of ${N} events, payload ${JSON.stringify(PAYLOAD).length} B`);
    console.log(`| measure | outbox | publish() x${PUBLISH_WINDOW} | ratio | target | met |`);
    console.log('| --- | --- | --- | --- | --- | --- |');
    console.log(`| relay throughput (${N} committed rows) | ${fmt(relay)} | ${fmt(publish)} | ${ratio.toFixed(2)}x | >= 0.8x | ${ratio >= 0.8 ? 'yes' : 'no'} |`);
    console.log(
      `| commit -> handler at ${RATE}/s for ${SECONDS} s (NOTIFY) | p50 ${lat.p50.toFixed(1)} ms, p99 ${lat.p99.toFixed(1)} ms, max ${lat.max.toFixed(1)} ms (${lat.n} events) | - | - | p99 <= 20 ms | ${lat.p99 <= 20 ? 'yes' : 'no'} |`,
    );
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
