import 'reflect-metadata';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { modulePublisher } from './contenders/module.js';
import { tunedPublishPipelined, tunedPublisher } from './contenders/raw-tuned.js';
import { PAYLOAD, PAYLOAD_BYTES, PUBLISH_WINDOW, uniqueName } from './support.js';

/**
 * The client CPU of pipelined publishing per message, for comparisons on a busy machine where
 * wall-clock rates are noise: one contender, `n` messages after a warm-up of the same size, and
 * the process's CPU time (user + system) of the measured part divided by `n`. Under
 * `valgrind --tool=callgrind` the instruction count of a run with a larger `n` minus one with a
 * smaller gives the instructions per message, which a loaded machine does not change.
 *
 *   NATS_URL=nats://127.0.0.1:4333 node dist-bench/bench/publish-cost.js <contender> <n>
 *
 * Contenders: `module` (`publish()` in a window of PUBLISH_WINDOW), `batch` (`publishBatch`),
 * `tuned` (raw-tuned `js.publish` of pre-encoded bytes) and `tuned-json` (raw-tuned doing the
 * publisher's work by hand: JSON per object and a fresh msg-id).
 */
async function main(): Promise<void> {
  const url = process.env.NATS_URL;
  if (!url) throw new Error('set NATS_URL to a nats-server with JetStream (e.g. one started by `nats-server -js -p 4333`)');
  const [contender = 'module', count = '10000'] = process.argv.slice(2);
  const n = Number.parseInt(count, 10);
  const admin = await connect({ servers: url });
  const jsm = await jetstreamManager(admin);
  const stream = uniqueName('COST');
  await jsm.streams.add({ name: stream, subjects: [`${stream}.x`] });
  const subject = `${stream}.x`;
  let run: () => Promise<unknown>;
  let close: () => Promise<void>;
  if (contender === 'module' || contender === 'batch') {
    const { publisher, close: stop } = await modulePublisher(url);
    close = stop;
    run =
      contender === 'batch'
        ? () => publisher.publishBatch(Array.from({ length: n }, () => ({ subject, payload: PAYLOAD })), { window: PUBLISH_WINDOW })
        : async () => {
            const window: Promise<unknown>[] = [];
            for (let i = 0; i < n; i++) {
              window.push(publisher.publish(subject, PAYLOAD));
              if (window.length === PUBLISH_WINDOW) await Promise.all(window.splice(0));
            }
            await Promise.all(window);
          };
  } else if (contender === 'tuned' || contender === 'tuned-json') {
    const { js, close: stop } = await tunedPublisher(url);
    close = stop;
    run = () => tunedPublishPipelined(js, subject, n, PAYLOAD_BYTES, contender === 'tuned-json' ? { payload: PAYLOAD } : undefined);
  } else {
    throw new Error(`unknown contender ${contender}: module, batch, tuned or tuned-json`);
  }
  await run(); // warm-up: the JIT and the connection, not counted
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await run();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(
    `${contender} n=${n}: ${Math.round((n / ms) * 1000)} msg/s, ${((cpu.user + cpu.system) / n).toFixed(2)} CPU-µs/msg (user ${(cpu.user / n).toFixed(2)}, system ${(cpu.system / n).toFixed(2)})\n`,
  );
  await close();
  await jsm.streams.delete(stream);
  await admin.close();
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
