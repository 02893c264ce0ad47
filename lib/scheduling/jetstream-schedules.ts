import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { JetStreamConnection } from '../connection/jetstream-connection.js';
import type { ResolvedModuleOptions } from '../options/jetstream-module-options.js';
import { DEFAULT_CONNECTION, JETSTREAM_CONNECTION_NAME, JETSTREAM_RESOLVED_OPTIONS } from '../options/jetstream.tokens.js';
import { JetStreamPublisher } from '../producer/jetstream-publisher.js';
import { ScheduleProvisioner } from './schedule-provisioner.js';
import { cancelSchedule, getSchedule, listSchedules, type ScheduleInfo } from './schedule-store.js';

/**
 * The server-side schedules of a connection: the declared ones are created or updated when the
 * module starts, before handlers consume; `list`, `get` and `cancel` work on any schedule,
 * `publisher.schedule()`'s one-shots included.
 */
@Injectable()
export class JetStreamSchedules implements OnModuleInit {
  private readonly logger: Logger;

  constructor(
    private readonly connection: JetStreamConnection,
    private readonly publisher: JetStreamPublisher,
    @Inject(JETSTREAM_RESOLVED_OPTIONS) private readonly options: ResolvedModuleOptions,
    @Inject(JETSTREAM_CONNECTION_NAME) connectionName: string,
  ) {
    this.logger = new Logger(connectionName === DEFAULT_CONNECTION ? 'JetStream' : `JetStream:${connectionName}`);
  }

  async onModuleInit(): Promise<void> {
    if (this.options.schedules.length === 0) return;
    try {
      await new ScheduleProvisioner(this.connection, this.publisher, this.logger).ensureAll(this.options.schedules);
    } catch (err) {
      // Nest runs no shutdown hook when init fails: an open connection would keep the process up.
      await this.connection.close();
      throw err;
    }
  }

  /** Schedules of one stream, or of every stream that allows them. */
  list(stream?: string): Promise<ScheduleInfo[]> {
    return listSchedules(this.connection, stream);
  }

  /** One schedule; undefined when there is none of that name (a fired one-shot is gone). */
  get(stream: string, name: string): Promise<ScheduleInfo | undefined> {
    return getSchedule(this.connection, stream, name);
  }

  /** Removes a schedule; false when there was none. A declared one comes back at the next start. */
  cancel(stream: string, name: string): Promise<boolean> {
    return cancelSchedule(this.connection, stream, name);
  }
}
