import {
  Inject,
  Injectable,
  Logger,
  Module,
  type DynamicModule,
  type InjectionToken,
  type OptionalFactoryDependency,
  type ModuleMetadata,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { JetStreamConnection } from '../connection/jetstream-connection.js';
import { ensureSchema, outboxDdl, probeTable } from '../database/schema.js';
import { JetStreamObservability } from '../observability/jetstream-observability.js';
import { JetStreamOutbox } from '../outbox/jetstream-outbox.js';
import { resolveOutboxOptions, type OutboxOptions, type ResolvedOutboxOptions } from '../outbox/outbox-options.js';
import { OutboxUnavailableError } from '../outbox/outbox-errors.js';
import { OutboxRelay } from '../outbox/outbox-relay.js';
import { JetStreamPublisher } from '../producer/jetstream-publisher.js';
import type { ResolvedModuleOptions } from '../options/jetstream-module-options.js';
import { JETSTREAM_RESOLVED_OPTIONS } from '../options/jetstream.tokens.js';

/** Injection token of the resolved outbox options. */
export const JETSTREAM_OUTBOX_OPTIONS = Symbol('JETSTREAM_OUTBOX_OPTIONS');
/** The outbox table, created (`ensureSchema`) and read once at startup. */
const OUTBOX_TABLE_READY = Symbol('OUTBOX_TABLE_READY');

export interface JetStreamOutboxAsyncOptions<Tx = unknown> extends Pick<ModuleMetadata, 'imports'> {
  useFactory: (...args: never[]) => OutboxOptions<Tx> | Promise<OutboxOptions<Tx>>;
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
}

/** Starts this instance's relay once the app is up, and stops it before the NATS connection closes. */
@Injectable()
export class OutboxRelayHost implements OnApplicationBootstrap, OnModuleDestroy {
  readonly relay: OutboxRelay | undefined;

  constructor(
    @Inject(JETSTREAM_OUTBOX_OPTIONS) options: ResolvedOutboxOptions,
    publisher: JetStreamPublisher,
    connection: JetStreamConnection,
    observability: JetStreamObservability,
    @Inject(JETSTREAM_RESOLVED_OPTIONS) private readonly moduleOptions: ResolvedModuleOptions,
  ) {
    if (options.relay === false) return;
    this.relay = new OutboxRelay(
      options,
      {
        publish: (subject, data, o) => publisher.publish(subject, data, o),
        connected: () => connection.state === 'connected',
        jsm: connection.jsm,
      },
      new Logger('OutboxRelay'),
      (subject, reason) => observability.outboxParked(subject, reason),
    );
  }

  async onApplicationBootstrap(): Promise<void> {
    // The streams the app declares are checked at startup; any other at its first publish.
    await this.relay?.checkStreams(this.moduleOptions.streams.map((s) => s.name));
    this.relay?.start();
  }

  async onModuleDestroy(): Promise<void> {
    await this.relay?.stop();
  }
}

/**
 * `JetStreamOutboxModule.forRoot({ database: pgAdapter(pool), ensureSchema: true })`, beside
 * `JetStreamModule.forRoot(...)` (whose default connection it publishes on): injects
 * `JetStreamOutbox` and runs a relay in this instance.
 */
@Module({})
export class JetStreamOutboxModule {
  static forRoot<Tx>(options: OutboxOptions<Tx>): DynamicModule {
    return JetStreamOutboxModule.forRootAsync({ useFactory: () => options });
  }

  static forRootAsync<Tx>(options: JetStreamOutboxAsyncOptions<Tx>): DynamicModule {
    return {
      module: JetStreamOutboxModule,
      global: true,
      imports: options.imports ?? [],
      providers: [
        {
          provide: JETSTREAM_OUTBOX_OPTIONS,
          useFactory: async (...args: never[]) => resolveOutboxOptions(await options.useFactory(...args)),
          inject: options.inject ?? [],
        },
        {
          provide: OUTBOX_TABLE_READY,
          useFactory: async (resolved: ResolvedOutboxOptions, connection: JetStreamConnection) => {
            try {
              if (resolved.ensureSchema) await ensureSchema(resolved.database.transaction, outboxDdl(resolved.table));
              await probeOutboxTable(resolved);
            } catch (err) {
              // Nest runs no shutdown hook when startup fails: the connection the module opened
              // before this provider would keep the process alive after the error.
              await connection.close();
              throw err;
            }
            return true;
          },
          inject: [JETSTREAM_OUTBOX_OPTIONS, JetStreamConnection],
        },
        {
          provide: JetStreamOutbox,
          useFactory: (resolved: ResolvedOutboxOptions, connection: JetStreamConnection) =>
            new JetStreamOutbox(resolved, () => connection.nc.info?.max_payload),
          inject: [JETSTREAM_OUTBOX_OPTIONS, JetStreamConnection],
        },
        OutboxRelayHost,
      ],
      exports: [JetStreamOutbox, OutboxRelayHost, JETSTREAM_OUTBOX_OPTIONS],
    };
  }
}

/**
 * A missing table fails startup, naming the fix, rather than the app's first checkout (inside
 * its transaction) and then a relay retrying a statement that can never work.
 */
function probeOutboxTable({ database, table }: ResolvedOutboxOptions): Promise<void> {
  const use = { kind: 'outbox', columns: 'id, seq, subject, payload, headers, key, published_at, parked_at, last_error', ddl: 'outboxDdl' } as const;
  return probeTable(database, table, use, (detail, cause) => new OutboxUnavailableError(detail, cause));
}
