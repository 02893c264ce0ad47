// The inbox against an at-least-once handler doing the same INSERT, side by side on one database
// (DATABASE_URL's PostgreSQL, else PGlite) and one throwaway nats-server:
// `npm run bench:inbox` prints msg/s of each and their ratio per round (BENCH_INBOX_N messages,
// BENCH_ROUNDS rounds, alternating which goes first).
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { openDatabase, type OpenedDatabase } from '../lib/index.js';
import { startBenchServer } from './bench-server.js';
import { CONCURRENCY, inboxRound, KINDS, N, type Kind } from './inbox-rounds.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BINARY = process.env.NATS_SERVER_BIN ?? '.cache/nats-server/bin/nats-server';
let db: OpenedDatabase;

async function main(): Promise<void> {
  const server = await startBenchServer(BINARY);
  const url = process.env.DATABASE_URL;
  db = await openDatabase(url ? { url } : {});
  await db.query('DROP SCHEMA IF EXISTS bench_inbox CASCADE');
  await db.query('CREATE SCHEMA bench_inbox');
  const logger = new Logger('bench:inbox');
  logger.log(`${N} messages, concurrency ${CONCURRENCY}, ${url ? 'PostgreSQL' : 'PGlite'}, ${ROUNDS} rounds`);
  const ratios: number[] = [];
  const txRatios: number[] = [];
  const groupRatios: number[] = [];
  const groupTxRatios: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // Rotated, so no contender always runs first (cold) or last.
      const order = KINDS.map((_, i) => KINDS[(i + round) % KINDS.length]);
      const rate = {} as Record<Kind, number>;
      for (const kind of order) rate[kind] = await inboxRound(kind, server.url, db, round);
      const group = rate['inbox-group-commit'];
      ratios.push(rate.inbox / rate['at-least-once']);
      txRatios.push(rate.inbox / rate['at-least-once-tx']);
      groupRatios.push(group / rate['at-least-once']);
      groupTxRatios.push(group / rate['at-least-once-tx']);
      console.log(
        `round ${round + 1}: at-least-once + INSERT ${rate['at-least-once'].toFixed(0)} msg/s | at-least-once + INSERT in a transaction ${rate['at-least-once-tx'].toFixed(0)} msg/s | inbox ${rate.inbox.toFixed(0)} msg/s | inbox, group commit ${group.toFixed(0)} msg/s | ratios inbox ${(rate.inbox / rate['at-least-once']).toFixed(2)} / ${(rate.inbox / rate['at-least-once-tx']).toFixed(2)}, group commit ${(group / rate['at-least-once']).toFixed(2)} / ${(group / rate['at-least-once-tx']).toFixed(2)}`,
      );
    }
    const summary = (values: number[]) => {
      const sorted = [...values].sort((a, b) => a - b);
      return `median ${sorted[Math.floor(sorted.length / 2)].toFixed(2)} (min ${sorted[0].toFixed(2)}, max ${sorted[sorted.length - 1].toFixed(2)})`;
    };
    const where = url ? 'PostgreSQL' : 'PGlite';
    console.log(`inbox / at-least-once + INSERT: ${summary(ratios)} on ${where}`);
    console.log(`inbox / at-least-once + INSERT in a transaction: ${summary(txRatios)} on ${where}`);
    console.log(`inbox, group commit / at-least-once + INSERT: ${summary(groupRatios)} on ${where}`);
    console.log(`inbox, group commit / at-least-once + INSERT in a transaction: ${summary(groupTxRatios)} on ${where}`);
  } finally {
    await db.query('DROP SCHEMA IF EXISTS bench_inbox CASCADE').catch(() => undefined);
    await db.close();
    await server.stop();
  }
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
