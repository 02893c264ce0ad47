import { Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import { scopedToken } from '../module/connection-tokens.js';
import type { JetStreamLifecycle } from '../module/jetstream-lifecycle.js';
import { readLag, type LagResult } from '../observability/consumer-lag-sampler.js';

export interface JetStreamHealthOptions {
  /**
   * Down when a consumer has more than this many messages not yet delivered to it
   * (`num_pending`). Default: lag is not checked (it costs one request per consumer).
   */
  maxLag?: number;
  /** Deadline of each consumer-info request when `maxLag` is set; default 2 000 ms. */
  timeoutMs?: number;
  /** Named connection (`JetStreamModule.forRoot({ name })`) to check; default the default one. */
  connection?: string;
}

/** Per consumer, `stream/consumer`: its lag, or why it could not be read. */
export type ConsumerLagDetails = Record<string, { pending: number; ackPending: number } | { error: string }>;

/**
 * A `@nestjs/terminus` health indicator: down while the NATS connection is not connected
 * (reconnecting or closed), while a handler's consumer is not running, or, with `maxLag`, while a
 * consumer is further behind than that. Provide it next to `TerminusModule`.
 */
@Injectable()
export class JetStreamHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly moduleRef: ModuleRef,
  ) {}

  async isHealthy<const Key extends string = 'jetstream'>(
    key: Key = 'jetstream' as Key,
    options: JetStreamHealthOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const check = this.health.check(key);
    const name = options.connection ?? 'default';
    let connection: JetStreamConnection;
    let lifecycle: JetStreamLifecycle;
    try {
      connection = this.moduleRef.get<JetStreamConnection>(scopedToken('connection', name), { strict: false });
      lifecycle = this.moduleRef.get<JetStreamLifecycle>(scopedToken('lifecycle', name), { strict: false });
    } catch {
      return check.down({ message: `no JetStream connection named "${name}" (is JetStreamModule.forRoot imported?)` });
    }
    const state = connection.state;
    const handlers = lifecycle.handlers;
    const stopped = handlers.filter((h) => !h.active).map((h) => h.handlerId);
    const details: { connection: string; consumers: { expected: number; running: number }; lag?: ConsumerLagDetails } = {
      connection: state,
      consumers: { expected: handlers.length, running: handlers.length - stopped.length },
    };
    if (state !== 'connected') return check.down({ ...details, message: `NATS connection is ${state}` });
    if (stopped.length > 0) return check.down({ ...details, message: `consumers not running: ${stopped.join(', ')}` });
    if (options.maxLag === undefined) return check.up(details);

    const timeoutMs = options.timeoutMs ?? 2_000;
    const lags = await Promise.all(
      handlers.map((h) => readLag(connection.jsm, { stream: h.stream, consumer: h.consumer }, timeoutMs)),
    );
    details.lag = Object.fromEntries(lags.map((l) => [`${l.stream}/${l.consumer}`, lagDetail(l)]));
    const behind = lags.filter((l) => 'error' in l || l.pending > options.maxLag!);
    if (behind.length > 0) {
      const what = behind.map((l) => `${l.stream}/${l.consumer} ${'error' in l ? `(${l.error})` : `${l.pending} pending`}`);
      return check.down({ ...details, message: `consumer lag over ${options.maxLag}: ${what.join(', ')}` });
    }
    return check.up(details);
  }
}

function lagDetail(l: LagResult): { pending: number; ackPending: number } | { error: string } {
  return 'error' in l ? { error: l.error } : { pending: l.pending, ackPending: l.ackPending };
}
