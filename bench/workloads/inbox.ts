import { CONCURRENCY, inboxRound, N } from '../inbox-rounds.js';
import { addNote, addRow, ratio, times } from '../report.js';
import { enabled, rounds, type BenchContext } from '../support.js';
import { benchDatabases } from './outbox.js';

/** The inbox against an at-least-once handler doing the same INSERT (autocommitted), per database. */
export async function inboxWorkload(ctx: BenchContext): Promise<void> {
  if (!enabled('module')) return;
  let round = 0;
  for (const { name, open } of benchDatabases()) {
    const db = await open();
    await db.query('DROP SCHEMA IF EXISTS bench_inbox CASCADE');
    await db.query('CREATE SCHEMA bench_inbox');
    try {
      const rate = await rounds(
        `inbox ${name}`,
        {
          inbox: () => inboxRound('inbox', ctx.url, db, round++),
          'inbox-group-commit': () => inboxRound('inbox-group-commit', ctx.url, db, round++),
          'at-least-once': () => inboxRound('at-least-once', ctx.url, db, round++),
        },
        (v) => `${Math.round(v)} msg/s`,
      );
      const r = ratio(rate.inbox, rate['at-least-once']);
      addRow({ workload: `inbox handler + INSERT, ${name}`, unit: 'msg/s', raw: rate['at-least-once'], module: rate.inbox, vsRaw: times(r), target: '>= 0.7x raw', met: r === undefined ? undefined : r >= 0.7 });
      const g = ratio(rate['inbox-group-commit'], rate['at-least-once']);
      addRow({ workload: `inbox handler + INSERT, group commit, ${name}`, unit: 'msg/s', raw: rate['at-least-once'], module: rate['inbox-group-commit'], vsRaw: times(g), target: '>= 0.7x raw', met: g === undefined ? undefined : g >= 0.7 });
    } finally {
      await db.query('DROP SCHEMA IF EXISTS bench_inbox CASCADE').catch(() => undefined);
      await db.close();
    }
  }
  addNote(`inbox rows: ${N} messages waiting in the stream, concurrency ${CONCURRENCY}; the raw column holds an at-least-once handler doing the same INSERT autocommitted, the module column the inbox handler (its INSERT and the inbox row in one transaction; with group commit, \`groupCommit: true\`, waiting messages share one).`);
}
