import 'reflect-metadata';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { moduleBatchConsumer, moduleConsumer, type PayloadKind } from './contenders/module.js';
import { tunedConsume, type TunedHandler } from './contenders/raw-tuned.js';
import { prefill, uniqueName, type BenchContext, type CpuSpent } from './support.js';

const decoder = new TextDecoder('utf-8', { fatal: true });
const handlers: Record<string, TunedHandler> = {
  binary: async () => undefined,
  json: async (data) => void JSON.parse(decoder.decode(data)),
};

/**
 * The client CPU per consumed and acked message, first handled message to the last ack flushed,
 * for comparisons on a busy machine where wall-clock rates are noise. Each run pre-fills a stream
 * of `n` messages and consumes it once to warm up, then a second stream measured.
 *
 *   NATS_URL=nats://127.0.0.1:4333 node dist-bench/bench/consume-cost.js <tuned|module|batch> <binary|json|class> <concurrency> <n>
 *
 * `batch`: a batch handler of 100 a batch (JSON payloads). `prefill`: the pre-filling alone,
 * whose instruction count under callgrind is subtracted from the others'.
 */
async function main(): Promise<void> {
  const url = process.env.NATS_URL;
  if (!url) throw new Error('set NATS_URL to a nats-server with JetStream');
  const [contender = 'module', kind = 'json', concurrency = '64', count = '20000'] = process.argv.slice(2);
  const n = Number.parseInt(count, 10);
  const c = Number.parseInt(concurrency, 10);
  const nc = await connect({ servers: url });
  const ctx: BenchContext = { url, nc, js: jetstream(nc), jsm: await jetstreamManager(nc) };
  const once = async (): Promise<CpuSpent> => {
    const stream = uniqueName('CC');
    const subject = `${stream}.x`;
    await prefill(ctx, stream, subject, n);
    let cpu: CpuSpent | undefined;
    if (contender === 'tuned') {
      const handler = handlers[kind];
      if (!handler) throw new Error(`tuned handles binary or json, not ${kind}`);
      cpu = (await tunedConsume(url, stream, n, c, handler)).cpu;
    } else if (contender === 'module') {
      const consumer = await moduleConsumer(url, subject, n, { durable: 'cost', concurrency: c, dlq: false }, undefined, kind as PayloadKind);
      await consumer.elapsed;
      cpu = consumer.cpu();
      await consumer.app.close();
    } else if (contender === 'prefill') {
      // The baseline under callgrind: what the other contenders' counts hold besides consuming.
      cpu = { clientUs: 0 };
    } else if (contender === 'batch') {
      const consumer = await moduleBatchConsumer(url, subject, n, { durable: 'cost', concurrency: c, dlq: false, batch: { maxMessages: 100, maxWaitMs: 50 } });
      await consumer.elapsed;
      cpu = consumer.cpu();
      await consumer.app.close();
    } else {
      throw new Error(`unknown contender ${contender}: tuned, module or batch`);
    }
    await ctx.jsm.streams.delete(stream);
    if (!cpu) throw new Error('no CPU figure');
    return cpu;
  };
  await once();
  const cpu = await once();
  process.stdout.write(`${contender} ${kind} c=${c} n=${n}: ${(cpu.clientUs / n).toFixed(2)} client CPU-µs/msg\n`);
  await nc.close();
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
