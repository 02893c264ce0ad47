import { Logger, type OnApplicationShutdown } from '@nestjs/common';
import { InboxUnavailableError } from './inbox-errors.js';
import { ensureSchema, inboxDdl } from '../database/schema.js';
import { InboxCleanup } from './inbox-cleanup.js';
import { resolveInboxOptions, type JetStreamInboxOptions, type ResolvedInboxOptions } from './inbox-options.js';
import { InboxStore } from './inbox-store.js';
import { DatabaseReachability } from './database-reachability.js';

/**
 * The application's inbox: the table inbox handlers record their messages in, the database it
 * lives in, and the job that forgets rows past their retention. One per application, shared by
 * every connection's inbox handlers (`JetStreamInboxModule` provides it).
 */
export class JetStreamInbox implements OnApplicationShutdown {
  readonly options: ResolvedInboxOptions;
  readonly store: InboxStore;
  /** Shared by the inbox handlers' holds: one probe loop and one log line per outage. */
  readonly reachability: DatabaseReachability;
  private readonly cleanup: InboxCleanup;
  private started?: Promise<void>;

  constructor(options: JetStreamInboxOptions, logger = new Logger('JetStreamInbox')) {
    this.options = resolveInboxOptions(options);
    this.store = new InboxStore(this.options.database, this.options.table, this.options.groupCommit);
    this.cleanup = new InboxCleanup(this.store, this.options.retentionMs, this.options.cleanupIntervalMs, logger);
    this.reachability = new DatabaseReachability(() => this.options.database.query('SELECT 1'), this.options.table.name, logger);
  }

  /** Creates the table when `ensureSchema` is on, then starts the cleanup; once, however often called. */
  start(): Promise<void> {
    this.started ??= (async () => {
      if (this.options.ensureSchema) {
        const db = this.options.database;
        await ensureSchema((work) => db.transaction((sql) => work(sql)), inboxDdl(this.options.table));
      }
      await this.probe();
      this.cleanup.start();
    })().catch((err: unknown) => {
      // A failed start (table missing, database down) is tried again by the next caller.
      this.started = undefined;
      throw err;
    });
    return this.started;
  }

  /** Deletes expired rows now (the job does it every `cleanupIntervalMs`). */
  deleteExpired(): Promise<void> {
    return this.cleanup.runOnce();
  }

  async stop(): Promise<void> {
    this.reachability.close();
    await this.cleanup.stop();
  }

  onApplicationShutdown(): Promise<void> {
    return this.stop();
  }

  /** A missing table or a wrong database fails startup, naming the fix, not the first message. */
  private async probe(): Promise<void> {
    const { database, table } = this.options;
    try {
      await database.query(`SELECT consumer, msg_id, handled_at FROM ${table.sql} LIMIT 0`);
    } catch (err) {
      const missing = (err as { code?: unknown }).code === '42P01';
      throw new InboxUnavailableError(
        missing
          ? `the inbox table ${table.name} does not exist in the ${database.driver} database: create it with a migration (inboxDdl() gives the statements) or set ensureSchema: true`
          : `the inbox table ${table.name} cannot be read in the ${database.driver} database`,
        err,
      );
    }
  }
}
