import { Logger, type OnApplicationShutdown } from '@nestjs/common';
import { InboxUnavailableError } from './inbox-errors.js';
import { ensureSchema, inboxDdl, probeTable } from '../database/schema.js';
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
  private probe(): Promise<void> {
    const { database, table } = this.options;
    const use = { kind: 'inbox', columns: 'consumer, msg_id, handled_at', ddl: 'inboxDdl' } as const;
    return probeTable(database, table, use, (detail, cause) => new InboxUnavailableError(detail, cause));
  }
}
