import type { JetStreamManager, JetStreamClient } from '@nats-io/jetstream';
import {
  JetStreamOutbox,
  JetStreamOutboxModule,
  JetStreamModule,
  OutboxRelayHost,
  type DatabaseAdapter,
  type JetStreamModuleOptions,
  type OutboxRelayOptions,
} from '../../lib/index.js';
import { CapturingLogger, startApp, type TestApp } from '../support/test-app.js';
import type { AppTracker } from './kit.js';

/** An app with the module and an outbox on `table`; its relay as the module runs it. */
export interface OutboxApp {
  readonly app: TestApp;
  readonly outbox: JetStreamOutbox;
  readonly host: OutboxRelayHost;
  readonly logger: CapturingLogger;
}

export async function startOutboxApp(
  apps: AppTracker,
  options: {
    servers: string;
    database: DatabaseAdapter;
    table: string;
    relay?: OutboxRelayOptions | false;
    module?: Partial<JetStreamModuleOptions>;
    logger?: CapturingLogger;
    /** Default true. */
    ensureSchema?: boolean;
  },
): Promise<OutboxApp> {
  const app = apps.track(
    await startApp(
      {
        imports: [
          JetStreamModule.forRoot({ servers: options.servers, ...options.module }),
          JetStreamOutboxModule.forRoot({ database: options.database, table: options.table, ensureSchema: options.ensureSchema ?? true, relay: options.relay }),
        ],
      },
      options.logger,
    ),
  );
  return { app, outbox: app.app.get(JetStreamOutbox), host: app.app.get(OutboxRelayHost), logger: app.logger };
}

export interface StoredEvent {
  readonly seq: number;
  readonly subject: string;
  readonly msgId: string;
  readonly data: string;
  readonly headers: Record<string, string[]>;
}

/** Every message of the stream, in stream order, read with an ordered consumer. */
export async function storedEvents(js: JetStreamClient, jsm: JetStreamManager, stream: string): Promise<StoredEvent[]> {
  const total = (await jsm.streams.info(stream)).state.messages;
  const out: StoredEvent[] = [];
  if (total === 0) return out;
  const consumer = await js.consumers.get(stream);
  while (out.length < total) {
    const batch = await consumer.fetch({ max_messages: Math.min(1_000, total - out.length), expires: 5_000 });
    for await (const m of batch) {
      const headers: Record<string, string[]> = {};
      for (const [k, v] of m.headers ?? []) headers[k] = v;
      out.push({ seq: m.seq, subject: m.subject, msgId: m.headers?.get('Nats-Msg-Id') ?? '', data: m.string(), headers });
    }
  }
  return out;
}

/** Msg-ids stored more than once: what "exactly once" must keep empty. */
export function repeated(events: readonly StoredEvent[]): string[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const e of events) (seen.has(e.msgId) ? twice : seen).add(e.msgId);
  return [...twice];
}

export function lowerName(prefix: string): string {
  return `${prefix}_${Math.random().toString(36).slice(2, 10)}`;
}
