import type { DatabaseAdapter } from '../database/database-adapter.js';
import { hasDatabaseErrorCode } from '../database/database-errors.js';
import { INBOX_DUPLICATE } from './inbox-duplicate.js';
import { InboxHandlerAbortedError } from './inbox-errors.js';
import type { InboxStore } from './inbox-store.js';

/** How many inbox messages share a transaction, and how many such transactions run at once. */
export interface GroupCommitLimits {
  readonly maxMessages: number;
  readonly transactions: number;
}

type RunBatch = InboxStore['runBatch'];

/** One message waiting for, or running in, a group; settled once. */
class Member {
  done = false;
  result: unknown;
  constructor(
    readonly consumer: string,
    readonly key: string,
    readonly work: (tx: unknown) => Promise<unknown>,
    readonly keep: (result: unknown) => boolean,
    private readonly resolveRun: (value: unknown) => void,
    private readonly rejectRun: (err: unknown) => void,
  ) {}

  resolve(value: unknown): void {
    if (this.done) return;
    this.done = true;
    this.resolveRun(value);
  }

  reject(err: unknown): void {
    if (this.done) return;
    this.done = true;
    this.rejectRun(err);
  }
}

/** The member that ended its group's transaction: it failed, or its result is not to be kept. */
class Culprit {
  constructor(
    readonly member: Member,
    readonly outcome: { readonly error: unknown } | { readonly result: unknown },
  ) {}

  settle(): void {
    if ('error' in this.outcome) this.member.reject(this.outcome.error);
    else this.member.resolve(this.outcome.result);
  }
}

/** in_failed_sql_transaction: a statement failed earlier in the transaction and nothing was rolled back. */
const TRANSACTION_ABORTED = '25P02';

/**
 * Group commit for inbox messages: the messages of one consumer that wait while a transaction is
 * free share it. Their keys are claimed together with BEGIN (one round trip, `runBatch`), their
 * handlers run one after the other in it, and it commits once: per message, the handler's own
 * statements and about 3/n round trips (BEGIN+claim, a check, COMMIT), where a transaction of
 * its own costs 3 round trips and a WAL flush (the bench: `npm run bench:inbox`).
 *
 * Each message keeps its own outcome, and its writes commit with its row or not at all: a key
 * already recorded is a duplicate (acked, not run); a handler that throws, or whose result is not
 * to be kept (dead-lettered, abandoned on its timeout), rolls the transaction back and is settled
 * alone, and the others run again in a fresh transaction (so a handler may run again, with its
 * earlier writes rolled back, when a neighbour fails: as after a crash before the commit); a
 * transaction a handler left aborted (it caught a failed statement's error) is found before the
 * COMMIT, which would roll back in silence, and its messages run again one a transaction to find
 * which; a failed COMMIT fails every message of the group, none acked, each retried.
 *
 * Nothing waits for a group to fill: a free transaction takes the messages already waiting, so a
 * lone message commits alone and groups form under load; a message waits at most for the
 * handlers of its group before it. Keys are claimed in sorted order, so two groups claiming the
 * same keys (two instances, a redelivery) wait for each other in turn instead of deadlocking, and
 * a key never appears twice in one group (its second delivery waits for the next).
 */
export class InboxGroupCommit {
  private readonly waiting: Member[] = [];
  private open = 0;
  /**
   * With a transaction open, another opens only for this many waiting messages (a quarter of a
   * group); fewer wait for the open one. Opening one for any waiting message made groups of 2.0
   * on average (16 handlers at once, 4 transactions), so each message paid half a BEGIN and a
   * COMMIT: 0.56-0.84x of the autocommitted INSERT; waiting for 3 or 5 made groups of 3.0 and
   * 4.0 and gave 0.77-0.87x and 0.78-1.06x (PostgreSQL, two rounds each, load average 7 on 2 cores).
   */
  private readonly opensAnother: number;

  constructor(
    private readonly runBatch: RunBatch,
    private readonly db: DatabaseAdapter,
    private readonly limits: GroupCommitLimits,
  ) {
    this.opensAnother = Math.ceil(limits.maxMessages / 4);
  }

  run(consumer: string, key: string, work: (tx: unknown) => Promise<unknown>, keep: (result: unknown) => boolean): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.waiting.push(new Member(consumer, key, work, keep, resolve, reject));
      if (this.open === 0 || (this.open < this.limits.transactions && this.waiting.length >= this.opensAnother)) {
        this.open++;
        void this.drain();
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.waiting.length > 0) {
        let members = this.take();
        while (members.length > 0) members = await this.attempt(members);
      }
    } finally {
      this.open--;
    }
  }

  /** The first waiting message and those waiting for the same consumer, distinct keys, up to `maxMessages`. */
  private take(): Member[] {
    const first = this.waiting.shift()!;
    const group = [first];
    const keys = new Set([first.key]);
    for (let i = 0; i < this.waiting.length && group.length < this.limits.maxMessages; ) {
      const member = this.waiting[i];
      if (member.consumer === first.consumer && !keys.has(member.key)) {
        keys.add(member.key);
        group.push(member);
        this.waiting.splice(i, 1);
      } else i++;
    }
    return group;
  }

  /** One transaction for `members`; hands back those to run again in the next. */
  private async attempt(members: Member[]): Promise<Member[]> {
    const kept: Member[] = [];
    const keys = members.map((m) => m.key).sort();
    try {
      await this.runBatch(members[0].consumer, keys, async (tx, claimed) => {
        for (const member of members) {
          if (!claimed.has(member.key)) {
            member.resolve(INBOX_DUPLICATE);
            continue;
          }
          let result: unknown;
          try {
            result = await member.work(tx);
          } catch (error) {
            throw new Culprit(member, { error });
          }
          if (!member.keep(result)) throw new Culprit(member, { result });
          member.result = result;
          kept.push(member);
        }
        // A statement on an aborted transaction fails with 25P02, where COMMIT would roll back
        // without an error and the messages would be acked with nothing written. An adapter that
        // reports that COMMIT (node-postgres's) saves the round trip.
        if (!this.db.commitReportsRollback) await this.db.inTransaction(tx).query('SELECT 1');
        return { result: undefined, unclaim: [] };
      });
    } catch (err) {
      if (err instanceof Culprit) {
        err.settle();
        return members.filter((m) => !m.done);
      }
      if (aborted(err)) {
        if (members.length === 1) members[0].reject(new InboxHandlerAbortedError());
        else for (const member of members.filter((m) => !m.done)) await this.attempt([member]);
        return [];
      }
      for (const member of members) member.reject(err);
      return [];
    }
    for (const member of kept) member.resolve(member.result);
    return [];
  }
}

function aborted(err: unknown): boolean {
  return hasDatabaseErrorCode(err, TRANSACTION_ABORTED);
}
