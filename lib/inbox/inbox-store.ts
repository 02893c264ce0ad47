import type { DatabaseAdapter } from '../database/database-adapter.js';
import type { TableName } from '../database/table-names.js';
import { isDatabaseUnavailable } from '../database/database-errors.js';
import { DatabaseUnreachable } from './inbox-errors.js';
import { INBOX_DUPLICATE } from './inbox-duplicate.js';
import { InboxGroupCommit, type GroupCommitLimits } from './inbox-group-commit.js';

export { INBOX_DUPLICATE };

/** Thrown inside the transaction to roll it back while still handing back the work's result. */
class RollBack {
  constructor(readonly result: unknown) {}
}

/**
 * The inbox table: one row per (consumer, message key) whose handler committed. The row is the
 * first write of the handler's own transaction, so the row and the handler's writes commit or
 * roll back together, and a second delivery of the key finds the row (or, while the first
 * transaction is still open, waits on its row lock and then finds it).
 */
export class InboxStore {
  private readonly claimSql: string;
  private readonly recordedSql: string;
  private readonly expireSql: string;
  private readonly claimManySql: string;
  private readonly recordedManySql: string;
  private readonly unclaimManySql: string;
  /** Set with `groupCommit`: messages share transactions (`InboxGroupCommit`). */
  private readonly groups?: InboxGroupCommit;

  constructor(
    private readonly db: DatabaseAdapter,
    table: TableName,
    groupCommit?: GroupCommitLimits,
  ) {
    if (groupCommit) this.groups = new InboxGroupCommit((consumer, keys, work) => this.runBatch(consumer, keys, work), db, groupCommit);
    const t = table.sql;
    this.claimSql = `INSERT INTO ${t} (consumer, msg_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1 AS claimed`;
    this.recordedSql = `SELECT 1 AS found FROM ${t} WHERE consumer = $1 AND msg_id = $2`;
    // A batch's keys travel as one array parameter: one statement and one round trip a batch.
    this.claimManySql = `INSERT INTO ${t} (consumer, msg_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING RETURNING msg_id`;
    this.recordedManySql = `SELECT msg_id FROM ${t} WHERE consumer = $1 AND msg_id = ANY($2::text[])`;
    this.unclaimManySql = `DELETE FROM ${t} WHERE consumer = $1 AND msg_id = ANY($2::text[])`;
    // Batched, so a backlog of expired rows never holds one long lock or transaction.
    this.expireSql = `DELETE FROM ${t} WHERE ctid IN (SELECT ctid FROM ${t} WHERE handled_at < now() - $1::bigint * interval '1 millisecond' LIMIT $2) RETURNING 1`;
  }

  /**
   * Runs `work` in one transaction whose first write records the key. Commits when `work`
   * resolves and `keep(result)` holds; rolls back when it throws (rethrown) or `keep` is false
   * (the result is returned). `INBOX_DUPLICATE`, without calling `work`, when the key has a row.
   * With group commit the transaction is shared with other messages (`InboxGroupCommit`).
   */
  async run<R>(consumer: string, key: string, work: (tx: unknown) => Promise<R>, keep: (result: R) => boolean): Promise<R | typeof INBOX_DUPLICATE> {
    if (this.groups) return this.groups.run(consumer, key, work, keep as (result: unknown) => boolean) as Promise<R | typeof INBOX_DUPLICATE>;
    const first = { sql: this.claimSql, params: [consumer, key] };
    let began = false;
    try {
      // The claim goes with BEGIN in one round trip where the adapter can (`firstRows`).
      return await this.db.transaction(async (sql, tx, firstRows) => {
        const claimed = firstRows ?? (await sql.query(first.sql, first.params));
        began = true;
        if (claimed.length === 0) return INBOX_DUPLICATE;
        const result = await work(tx);
        if (!keep(result)) throw new RollBack(result);
        return result;
      }, first);
    } catch (err) {
      if (err instanceof RollBack) return err.result as R;
      // Nothing ran: the caller may wait for the database and try the same attempt again.
      if (!began && isDatabaseUnavailable(err)) throw new DatabaseUnreachable(err);
      throw err;
    }
  }

  /** Whether the key's handler committed (a message given up without running may have). */
  async recorded(consumer: string, key: string): Promise<boolean> {
    return (await this.db.query(this.recordedSql, [consumer, key])).length > 0;
  }

  /** Which of `keys` have a row: the keys whose handler committed. One query for a batch. */
  async recordedAmong(consumer: string, keys: readonly string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const rows = await this.db.query<{ msg_id: string }>(this.recordedManySql, [consumer, keys]);
    return new Set(rows.map((r) => r.msg_id));
  }

  /**
   * A batch's transaction: its first write claims every key at once, `work` runs with the keys
   * this transaction claimed (a key already recorded, or committed by another instance while
   * this one waited on its row lock, is not among them), the rows of the keys `work` hands back
   * in `unclaim` (its failed messages) are deleted, and the rest commits with `work`'s writes.
   * A throw from `work` rolls everything back and is rethrown.
   */
  async runBatch<R>(
    consumer: string,
    keys: readonly string[],
    work: (tx: unknown, claimed: ReadonlySet<string>) => Promise<{ readonly result: R; readonly unclaim: readonly string[] }>,
  ): Promise<R> {
    const claim = { sql: this.claimManySql, params: [consumer, keys] };
    let began = false;
    try {
      // The claim goes with BEGIN in one round trip where the adapter can, as `run`'s does.
      return await this.db.transaction(async (sql, tx, firstRows) => {
        const rows = (firstRows ?? (await sql.query(claim.sql, claim.params))) as Array<{ msg_id: string }>;
        began = true;
        const { result, unclaim } = await work(tx, new Set(rows.map((r) => r.msg_id)));
        if (unclaim.length > 0) await sql.query(this.unclaimManySql, [consumer, unclaim]);
        return result;
      }, claim);
    } catch (err) {
      // Nothing ran: the caller may wait for the database and try the same attempt again.
      if (!began && isDatabaseUnavailable(err)) throw new DatabaseUnreachable(err);
      throw err;
    }
  }

  /** Deletes up to `batch` rows older than `retentionMs`; returns how many went. */
  async deleteExpired(retentionMs: number, batch: number): Promise<number> {
    return (await this.db.query(this.expireSql, [retentionMs, batch])).length;
  }
}
