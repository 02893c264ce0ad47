import 'reflect-metadata';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { openDatabase } from '../lib/index.js';
import { startBenchServer } from './bench-server.js';
import { profiler } from './support.js';
import { N, publishRound, relayRound, type RoundProbe } from './outbox-rounds.js';

/**
 * Where the CPU of a relay round goes, for a busy 2-core machine where rates alone are noise:
 * the CPU time (user + system) per message of this node process, of the nats-server, and of
 * the PostgreSQL backends this process opened (tagged by application_name; PGlite runs inside
 * node), for relay rounds and publish() rounds of BENCH_OUTBOX_N events each.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node dist-bench/bench/outbox-cost.js [rounds]
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
  const binary = process.env.NATS_SERVER_BIN ?? (existsSync('.cache/nats-server/bin/nats-server') ? '.cache/nats-server/bin/nats-server' : 'nats-server');
  const server = await startBenchServer(binary);
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  const tag = `obxcost${process.pid}`;
  const url = process.env.DATABASE_URL;
  const db = await openDatabase(url ? { url: `${url}${url.includes('?') ? '&' : '?'}application_name=${tag}` } : {});
  const schema = `bench_outbox_cost_${process.pid}`;
  await db.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
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
  try {
    await relayRound(server.url, db, jsm, schema); // warm-up
    await publishRound(server.url, jsm, db, schema);
    for (let r = 0; r < rounds; r++) {
      await measure('relay  ', (probe) => relayRound(server.url, db, jsm, schema, probe));
      await measure('publish', (probe) => publishRound(server.url, jsm, db, schema, probe));
    }
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await db.close();
    await nc.close();
    await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
