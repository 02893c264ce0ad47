import { headers, nuid } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { ReplyInbox } from '../../lib/connection/reply-inbox.js';
import { IdempotencyStore } from '../../lib/delivery/idempotency-store.js';
import { addNote, addRow, ratio, times } from '../report.js';
import { N_RECORDS, cpuSummary, msgPerSec, rounds, startCpuMeter, uniqueName, type BenchContext, type CpuSpent } from '../support.js';

const IN_FLIGHT = 256;
const BATCH = 64;
const RECORD = new TextEncoder().encode(JSON.stringify({ s: 'p', u: 1_767_225_600_000, o: 'bench-host:1', q: 1 }));

/**
 * What one exactly-once idempotency record costs to write: the KV client's `create()` against
 * the module's path (the store's `acquire()` through the shared reply inbox), each with 256
 * writes in flight, plus, on nats-server 2.12+, atomic batches of 64 creates (the candidate for
 * fewer writes per message), with the client's and the server's CPU per write.
 */
export async function recordsWorkload(ctx: BenchContext): Promise<void> {
  const n = N_RECORDS;
  const cpu: Record<string, CpuSpent[]> = {};
  const measured = async (name: string, writes: number, run: () => Promise<void>): Promise<number> => {
    const meter = startCpuMeter();
    const started = performance.now();
    await run();
    const ms = performance.now() - started;
    const spent = meter.stop();
    // Stored per write, since atomic batches round the count down to whole batches.
    (cpu[name] ??= []).push({ clientUs: spent.clientUs / writes, serverUs: spent.serverUs === undefined ? undefined : spent.serverUs / writes });
    return msgPerSec(writes, ms);
  };
  const bucket = async (): Promise<string> => {
    const name = uniqueName('bench_records');
    await new Kvm(ctx.nc).create(name, { history: 1, ttl: 3_600_000 });
    return name;
  };
  const version = (ctx.nc.info?.version ?? '0.0.0').split('.').map(Number);
  const atomic = version[0] > 2 || (version[0] === 2 && version[1] >= 12);
  const contenders: Record<string, () => Promise<number>> = {
    'kv client': async () => {
      const name = await bucket();
      const kv = await new Kvm(ctx.nc).open(name);
      const rate = await measured('kv client', n, () => inParallel(n, IN_FLIGHT, async (i) => void (await kv.create(`k${i}`, RECORD))));
      await ctx.jsm.streams.delete(`KV_${name}`);
      return rate;
    },
    module: async () => {
      const name = await bucket();
      const inbox = new ReplyInbox(ctx.nc, 5_000);
      const store = await IdempotencyStore.open(ctx.nc, inbox, name, 3_600_000, 'bench-host:1', atomic, { warn: () => undefined });
      const rate = await measured('module', n, () =>
        inParallel(n, IN_FLIGHT, async (i) => {
          const key = `k${i}`;
          const lease = await store.acquire(key, i + 1, 30_000);
          if (lease.kind === 'acquired') await store.complete(key, lease.revision);
        }),
      );
      inbox.close();
      await ctx.jsm.streams.delete(`KV_${name}`);
      return rate;
    },
  };
  if (atomic) {
    contenders[`atomic batch of ${BATCH}`] = async () => {
      const name = await bucket();
      const info = await ctx.jsm.streams.info(`KV_${name}`);
      await ctx.jsm.streams.update(`KV_${name}`, { ...info.config, allow_atomic: true });
      const inbox = new ReplyInbox(ctx.nc, 5_000);
      const batches = Math.floor(n / BATCH);
      const rate = await measured(`atomic batch of ${BATCH}`, batches * BATCH, () =>
        inParallel(batches, IN_FLIGHT / BATCH, async (b) => {
          const id = nuid.next();
          // Every create but the last goes without a reply; the commit's reply acks the batch.
          for (let i = 0; i < BATCH - 1; i++) ctx.nc.publish(`$KV.${name}.b${b}_${i}`, RECORD, { headers: batchHeaders(id, i + 1, false) });
          const reply = await inbox.request(`$KV.${name}.b${b}_${BATCH - 1}`, RECORD, batchHeaders(id, BATCH, true));
          const ack = reply.json<{ count?: number; error?: { description: string } }>();
          if (ack.count !== BATCH) throw new Error(`atomic batch not stored: ${reply.string()}`);
        }),
      );
      inbox.close();
      await ctx.jsm.streams.delete(`KV_${name}`);
      return rate;
    };
  }
  const m = await rounds('idempotency records', contenders, (v) => `${Math.round(v)} writes/s`);
  const r = ratio(m.module, m['kv client']);
  addRow({
    workload: `idempotency record create ${n / 1000}k, ${IN_FLIGHT} in flight`,
    unit: 'writes/s',
    raw: m['kv client'],
    module: m.module,
    vsRaw: times(r),
    note: `the raw column holds the KV client's create(); the module column the store's acquire()${atomic ? `; atomic batches of ${BATCH}: ${Math.round(m[`atomic batch of ${BATCH}`])} writes/s` : ''}`,
  });
  addNote(`CPU per idempotency record write, median of the rounds: ${Object.keys(cpu).map((name) => cpuSummary(name, cpu[name], 1)).join('; ')}`);
}

function batchHeaders(id: string, seq: number, commit: boolean) {
  const h = headers();
  h.set('Nats-Expected-Last-Subject-Sequence', '0');
  h.set('Nats-Batch-Id', id);
  h.set('Nats-Batch-Sequence', String(seq));
  if (commit) h.set('Nats-Batch-Commit', '1');
  return h;
}

/** Runs `task(0..n-1)` with at most `width` running at once. */
async function inParallel(n: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.max(1, width) }, lane));
}
