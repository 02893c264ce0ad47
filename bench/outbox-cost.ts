import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { withOutboxBench } from './outbox-setup.js';
import { profiler } from './support.js';
import { N, publishRound, relayRound, type RoundProbe } from './outbox-rounds.js';

/**
 * Where the CPU of a relay round goes, for a busy 2-core machine where rates alone are noise:
 * the CPU time (user + system) per message of this node process, of the nats-server, and of
 * the PostgreSQL backends this process opened (tagged by application_name; PGlite runs inside
 * node), for relay rounds and publish() rounds of BENCH_OUTBOX_N events each.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:outbox-cost -- [rounds]
 *
 * BENCH_PROFILE=<dir> writes a CPU profile of each timed section (`relay-1.cpuprofile`, ...).
 */
const TICK_US = 10_000; // /proc/<pid>/stat counts in clock ticks of 10 ms (USER_HZ 100)

function procCpuUs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_US; // utime, stime
  } catch {
    return 0; // a backend that ended
  }
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 3);
  const tag = `obxcost${process.pid}`;
  const url = process.env.DATABASE_URL;
  await withOutboxBench(url && `${url}${url.includes('?') ? '&' : '?'}application_name=${tag}`, async ({ server, jsm, db, schema }) => {
  const backends = async (): Promise<number[]> =>
    url ? (await db.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, [tag])).map((r) => r.pid) : [];
  let section = 0;
  const measure = async (name: string, run: (probe: RoundProbe) => Promise<number>): Promise<void> => {
    const pids = await backends();
    let pg0: number[] = [];
    let nats0 = 0;
    let node0 = process.cpuUsage();
    let line = '';
    const rate = await run({
      start: () => {
        profiler.label = `${name.trim()}-${++section}`;
        profiler.start();
        pg0 = pids.map(procCpuUs);
        nats0 = procCpuUs(server.pid!);
        node0 = process.cpuUsage();
      },
      stop: async () => {
        const node = process.cpuUsage(node0);
        profiler.stop();
        const nats = procCpuUs(server.pid!) - nats0;
        // A backend opened during the round started from 0.
        const pg = (await backends()).reduce((sum, pid) => sum + procCpuUs(pid) - (pg0[pids.indexOf(pid)] ?? 0), 0);
        const per = (us: number) => (us / N).toFixed(1);
        line = `CPU-µs/msg node ${per(node.user + node.system)}, nats-server ${per(nats)}, postgres backends ${per(pg)}`;
      },
    });
    console.log(`${name}: ${Math.round(rate)} msg/s; ${line}`);
  };
    await relayRound(server.url, db, jsm, schema); // warm-up
    await publishRound(server.url, jsm, db, schema);
    for (let r = 0; r < rounds; r++) {
      await measure('relay  ', (probe) => relayRound(server.url, db, jsm, schema, probe));
      await measure('publish', (probe) => publishRound(server.url, jsm, db, schema, probe));
    }
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
