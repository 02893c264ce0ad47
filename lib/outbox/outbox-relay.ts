import type { LoggerService } from '@nestjs/common';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Listening, SqlRunner } from '../database/database-adapter.js';
import { isDatabaseUnavailable } from '../database/database-errors.js';
import { describeCause } from '../errors/jetstream-errors.js';
import type { ResolvedOutboxOptions, ResolvedRelayOptions } from './outbox-options.js';
import { outboxSql, type OutboxRow, type OutboxSql } from './outbox-sql.js';
import { unpublishableReason, type ParkReason } from './unpublishable.js';

/** What the relay needs of the NATS side: the module's publisher and connection. */
export interface RelayBroker {
  publish(subject: string, data: Uint8Array, options: { msgId: string; headers?: Record<string, readonly string[]> }): Promise<{ stream: string; duplicate: boolean }>;
  /** True while the connection is up (not reconnecting, not closed). */
  connected(): boolean;
  readonly jsm: JetStreamManager;
}

export interface RelayStats {
  published: number;
  /** Publishes the stream dropped as a repeat of a msg-id it had (a republish after a crash). */
  duplicates: number;
  parked: number;
  batches: number;
}

interface BatchOutcome {
  claimed: number;
  /** A publish failed for a reason that may pass (NATS down, no leader): back off. */
  waiting?: unknown;
}

/**
 * Publishes committed outbox rows. One batch is one database transaction: claim rows with
 * `FOR UPDATE SKIP LOCKED` (so relays of several instances never take the same row), publish
 * them with `Nats-Msg-Id` = the row id, mark them published, commit. A relay that dies
 * mid-batch holds its rows only as long as its connection: PostgreSQL releases the locks and
 * another relay (or this one, restarted) publishes them again, and the stream drops what it
 * already stored within its duplicate window.
 *
 * Rows of one key go in seq order (commit order), one at a time; keys and unkeyed rows go in
 * parallel. A row that can never be published is parked with its error; later rows of its key
 * wait behind it (logged), every other row goes on.
 */
export class OutboxRelay {
  readonly stats: RelayStats = { published: 0, duplicates: 0, parked: 0, batches: 0 };
  private readonly sql: OutboxSql;
  private readonly relay: ResolvedRelayOptions;
  private stopped = true;
  private running: Promise<void> | undefined;
  private again = false;
  /** Batches between their start and their claim's answer. */
  private claiming = 0;
  /** While batches run: starts one more worker when fewer than `concurrency` run. */
  private addWorker: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private cleanupTimer: NodeJS.Timeout | undefined;
  private listening: Listening | undefined;
  private backoffMs = 0;
  private databaseDown = false;
  private brokerWaiting = false;
  /** Published, but the transaction that marks them did not commit: marked next time, not resent. */
  private readonly unmarked = new Set<string>();
  private readonly checkedStreams = new Set<string>();
  /** Keys whose wait behind a parked row was logged, with that row's id. */
  private readonly blockedLogged = new Map<string, string>();

  constructor(
    private readonly options: ResolvedOutboxOptions,
    private readonly broker: RelayBroker,
    private readonly logger: LoggerService,
    private readonly onParked: (subject: string, reason: ParkReason) => void = () => undefined,
  ) {
    if (options.relay === false) throw new Error('OutboxRelay needs relay options');
    this.relay = options.relay;
    this.sql = outboxSql(options.table, options.channel);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.wake();
    this.cleanupTimer = setInterval(() => void this.deletePublished(), this.relay.cleanupIntervalMs);
    this.cleanupTimer.unref();
  }

  /** Lets the batch in flight finish (its rows are then marked), then stops. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.cleanupTimer);
    await this.running;
    const listening = this.listening;
    this.listening = undefined;
    await listening?.close().catch(() => undefined);
  }

  /** Relay now: a NOTIFY arrived, or a caller knows rows were committed. */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      // Every worker is past its claim: a free one takes the new rows now, rather than after a
      // whole batch's publishes and commit (the latency tail at a steady rate).
      if (this.claiming === 0) this.addWorker?.();
      return;
    }
    // In a backoff, a NOTIFY must not turn the wait into a busy loop.
    if (this.backoffMs > 0 && this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.running = this.loop().finally(() => {
      this.running = undefined;
    });
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.wake();
    }, ms);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.again = false;
      let outcome: BatchOutcome;
      // While NATS is away, claiming rows would only hold their locks (and, on PGlite, the one
      // connection the app writes through) for a publish timeout: wait without a transaction.
      if (!this.broker.connected()) {
        this.brokerFailed(new Error('the NATS connection is down'));
        this.schedule(this.nextBackoff());
        return;
      }
      try {
        await this.ensureListening();
        outcome = await this.relayBatches();
      } catch (err) {
        this.databaseFailed(err);
        this.schedule(this.nextBackoff());
        return;
      }
      this.databaseBack();
      if (outcome.waiting !== undefined) {
        this.brokerFailed(outcome.waiting);
        this.schedule(this.nextBackoff());
        return;
      }
      if (this.brokerWaiting) {
        this.brokerWaiting = false;
        this.logger.log(`Outbox ${this.options.table.name}: publishing again`, 'OutboxRelay');
      }
      this.backoffMs = 0;
      if (outcome.claimed < this.relay.batchSize && !this.again) break;
    }
    this.schedule(this.relay.pollIntervalMs);
  }

  private nextBackoff(): number {
    this.backoffMs = this.backoffMs === 0 ? this.relay.backoffInitialMs : Math.min(this.backoffMs * 2, this.relay.backoffMaxMs);
    return this.backoffMs;
  }

  private databaseFailed(err: unknown): void {
    if (this.databaseDown) return;
    this.databaseDown = true;
    const what = isDatabaseUnavailable(err) ? 'cannot reach the database' : 'failed';
    this.logger.error(
      `Outbox ${this.options.table.name}: relay ${what} (${describeCause(err)}); retrying with backoff up to ${this.relay.backoffMaxMs} ms, logged once until it recovers`,
      'OutboxRelay',
    );
    // The listening connection is likely gone too; listen again once the database answers.
    const listening = this.listening;
    this.listening = undefined;
    void listening?.close().catch(() => undefined);
  }

  private databaseBack(): void {
    if (!this.databaseDown) return;
    this.databaseDown = false;
    this.logger.log(`Outbox ${this.options.table.name}: database reachable again; relaying`, 'OutboxRelay');
  }

  private brokerFailed(err: unknown): void {
    if (this.brokerWaiting) return;
    this.brokerWaiting = true;
    this.logger.warn(
      `Outbox ${this.options.table.name}: cannot publish now (${describeCause(err)}); rows wait and are relayed when NATS answers`,
      'OutboxRelay',
    );
  }

  private async ensureListening(): Promise<void> {
    if (!this.relay.notify || this.listening) return;
    this.listening = await this.options.database.listen(
      this.options.channel,
      () => this.wake(),
      () => {
        // Polling covers the gap; the next batch listens again.
        this.listening = undefined;
      },
    );
  }

  /**
   * Up to `concurrency` workers, each claiming its next batch as soon as its last one committed,
   * so one worker's database round trips overlap the others' publishes and no batch waits for
   * the slowest of a round. Another worker starts when a batch comes back full, or when a NOTIFY
   * arrives while every worker is publishing; a wakeup for a few rows costs one claim, not
   * `concurrency` (on PGlite, where transactions take turns, idle claims would delay the app's
   * own). A worker stops at a short batch; all stop at the first error or unreachable broker.
   */
  private async relayBatches(): Promise<BatchOutcome> {
    let failed: { err: unknown } | undefined;
    let waiting: unknown;
    let lastClaimed = 0;
    let active = 0;
    const workers: Array<Promise<void>> = [];
    const worker = async (): Promise<void> => {
      while (!this.stopped && failed === undefined && waiting === undefined) {
        let outcome: BatchOutcome;
        try {
          outcome = await this.relayBatch();
        } catch (err) {
          failed ??= { err };
          return;
        }
        lastClaimed = outcome.claimed;
        if (outcome.waiting !== undefined) waiting ??= outcome.waiting;
        if (outcome.claimed < this.relay.batchSize) return;
        this.addWorker?.();
      }
    };
    this.addWorker = () => {
      if (active >= this.relay.concurrency || failed !== undefined || waiting !== undefined || this.stopped) return;
      active++;
      workers.push(worker().finally(() => active--));
    };
    this.addWorker();
    // The array grows while it is awaited; workers catch their own errors.
    for (let i = 0; i < workers.length; i++) await workers[i];
    this.addWorker = undefined;
    if (failed) throw failed.err;
    return { claimed: waiting === undefined ? lastClaimed : 0, waiting };
  }

  private async relayBatch(): Promise<BatchOutcome> {
    const published: string[] = [];
    this.claiming++;
    let claimDone = false;
    const claimed = (): void => {
      if (claimDone) return;
      claimDone = true;
      this.claiming--;
    };
    const claim = { sql: this.sql.claim, params: [this.relay.batchSize] };
    // The claim goes with BEGIN in one round trip where the adapter can.
    const outcome = await this.options.database.transaction(async (sql, _tx, firstRows) => {
      published.length = 0;
      const rows = (firstRows as OutboxRow[] | undefined) ?? (await sql.query<OutboxRow>(claim.sql, claim.params));
      claimed();
      // A full claim means a backlog: the next worker claims now, while these rows are published,
      // rather than after this batch's commit (10 000 rows: the relay ramped up to its
      // `concurrency` over the first three batches).
      if (rows.length === this.relay.batchSize) this.addWorker?.();
      if (rows.length === 0) return { claimed: 0, parked: [] as Array<{ row: OutboxRow; reason: ParkReason; error: string }> };
      const chains = await this.chainsInOrder(sql, rows);
      const parked: Array<{ row: OutboxRow; reason: ParkReason; error: string }> = [];
      let waiting: unknown;
      let next = 0;
      const lane = async (): Promise<void> => {
        while (next < chains.length) {
          for (const row of chains[next++]) {
            if (this.unmarked.has(row.id)) {
              published.push(row.id);
              continue;
            }
            try {
              const ack = await this.broker.publish(row.subject, row.payload, { msgId: row.id, headers: row.headers ?? undefined });
              published.push(row.id);
              this.unmarked.add(row.id);
              if (ack.duplicate) this.stats.duplicates++;
              if (!this.checkedStreams.has(ack.stream)) void this.checkDuplicateWindow(ack.stream);
            } catch (err) {
              const reason = unpublishableReason(err, this.broker.connected());
              if (reason) parked.push({ row, reason, error: describeCause(err) });
              else waiting ??= err;
              break; // the rest of this key waits: behind a parked row, or for the broker
            }
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.relay.window, chains.length) }, lane));
      // The claim marked every row published: what was not is handed back before the commit.
      if (published.length + parked.length < rows.length) await sql.query(this.sql.unclaim, [notPublished(rows, published, parked)]);
      for (const p of parked) await sql.query(this.sql.park, [p.row.id, `${p.reason}: ${p.error}`]);
      return { claimed: rows.length, parked, waiting };
    }, claim).finally(claimed);
    for (const id of published) this.unmarked.delete(id);
    this.stats.batches++;
    this.stats.published += published.length;
    for (const p of outcome.parked) {
      this.stats.parked++;
      this.onParked(p.row.subject, p.reason);
      this.logger.error(
        `Outbox ${this.options.table.name}: event ${p.row.id} on "${p.row.subject}" can never be published and is parked (${p.reason}: ${p.error})${p.row.key !== null ? `; later events of key "${p.row.key}" wait behind it` : ''}`,
        'OutboxRelay',
      );
    }
    return { claimed: outcome.claimed, waiting: 'waiting' in outcome ? outcome.waiting : undefined };
  }

  /**
   * Unkeyed rows each make a chain of one. A key's chain is its claimed rows in seq order, up to
   * the first earlier-or-between row of that key the claim did not take (another relay holds it,
   * or it is parked): no row of a key overtakes an earlier one.
   */
  private async chainsInOrder(sql: SqlRunner, rows: OutboxRow[]): Promise<OutboxRow[][]> {
    const chains: OutboxRow[][] = [];
    const keyed = new Map<string, OutboxRow[]>();
    let maxSeq = 0;
    for (const row of rows) {
      if (row.key === null) chains.push([row]);
      else {
        const chain = keyed.get(row.key);
        if (chain) chain.push(row);
        else keyed.set(row.key, [row]);
        maxSeq = Math.max(maxSeq, Number(row.seq));
      }
    }
    if (keyed.size === 0) return chains;
    // The claimed rows are marked by now: these are the others, first of each key first.
    const others = await sql.query<{ key: string; seq: string | number; id: string; parked: boolean; last_error: string | null }>(this.sql.pendingOfKeys, [
      [...keyed.keys()],
      maxSeq,
    ]);
    const firstOther = new Map<string, (typeof others)[number]>();
    for (const o of others) if (!firstOther.has(o.key)) firstOther.set(o.key, o);
    for (const [key, mine] of keyed) {
      const other = firstOther.get(key);
      if (other?.parked) this.logBlocked(key, other.id, other.last_error);
      const chain = other === undefined ? mine : mine.filter((r) => Number(r.seq) < Number(other.seq));
      if (chain.length > 0) chains.push(chain);
    }
    return chains;
  }

  private logBlocked(key: string, parkedId: string, error: string | null): void {
    if (this.blockedLogged.get(key) === parkedId) return;
    this.blockedLogged.set(key, parkedId);
    this.logger.warn(
      `Outbox ${this.options.table.name}: events of key "${key}" wait behind parked event ${parkedId} (${error ?? 'unknown error'}); requeue or delete it to let them go`,
      'OutboxRelay',
    );
  }

  /** The startup check: streams the app declares are known before anything is relayed. */
  checkStreams(streams: readonly string[]): Promise<void> {
    return Promise.all(streams.filter((s) => !this.checkedStreams.has(s)).map((s) => this.checkDuplicateWindow(s))).then(() => undefined);
  }

  private async checkDuplicateWindow(stream: string): Promise<void> {
    this.checkedStreams.add(stream);
    try {
      const info = await this.broker.jsm.streams.info(stream);
      const windowMs = (info.config.duplicate_window ?? 0) / 1_000_000;
      if (windowMs < this.relay.republishWindowMs) {
        this.logger.warn(
          `Outbox ${this.options.table.name}: stream "${stream}" has a duplicate_window of ${windowMs} ms, shorter than the outbox's republishWindowMs of ${this.relay.republishWindowMs} ms; an event republished after a relay crash later than ${windowMs} ms would be stored twice. Raise the stream's duplicate_window or lower republishWindowMs`,
          'OutboxRelay',
        );
      }
    } catch (err) {
      this.checkedStreams.delete(stream);
      this.logger.debug?.(`Outbox: could not read stream "${stream}" to check its duplicate_window (${describeCause(err)})`, 'OutboxRelay');
    }
  }

  /** Deletes published rows past the retention, in slices so no statement runs long. */
  async deletePublished(): Promise<number> {
    let total = 0;
    try {
      for (;;) {
        const deleted = (await this.options.database.query(this.sql.deletePublished, [this.relay.retentionMs])).length;
        total += deleted;
        if (deleted < 10_000 || this.stopped) break;
      }
    } catch (err) {
      this.logger.debug?.(`Outbox ${this.options.table.name}: retention cleanup failed (${describeCause(err)}); next interval retries`, 'OutboxRelay');
    }
    return total;
  }
}

/** Ids of the claimed rows neither published nor parked. */
function notPublished(rows: readonly OutboxRow[], published: readonly string[], parked: ReadonlyArray<{ row: OutboxRow }>): string[] {
  const done = new Set(published);
  for (const p of parked) done.add(p.row.id);
  return rows.filter((r) => !done.has(r.id)).map((r) => r.id);
}
