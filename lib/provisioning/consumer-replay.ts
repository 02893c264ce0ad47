import { DeliverPolicy, JetStreamApiError, type ConsumerConfig, type ConsumerInfo } from '@nats-io/jetstream';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import { IdempotencyStore } from '../delivery/idempotency-store.js';
import { DEFAULT_IDEMPOTENCY_BUCKET } from '../options/jetstream-module-options.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { streamInfoOrUndefined } from './stream-info.js';
import { ApiCode, hasApiCode } from '../errors/jetstream-api-codes.js';

export type ReplayStart = { readonly seq: number } | { readonly time: Date };

export interface ReplayOptions {
  /**
   * Delete the durable and create it again starting at the sequence. Needed on servers older
   * than 2.14 and for durables whose deliver policy is `new`/`last`/`last_per_subject`; it
   * changes the durable's deliver policy, so the app must be stopped and told the new start.
   */
  readonly recreate?: boolean;
  /**
   * Idempotency bucket of the app's exactly-once handlers (module option `idempotency.bucket`):
   * the replay notes there how far the durable's acks reached, so those handlers skip what they
   * handled before. Default: the module's default bucket.
   */
  readonly idempotencyBucket?: string;
}

export interface ReplayResult {
  /** `reset`: moved in place (server 2.14+); `recreate`: deleted and created again. */
  readonly method: 'reset' | 'recreate';
  readonly stream: string;
  readonly durable: string;
  /** The next message delivered has this stream sequence or a later one. */
  readonly startSeq: number;
  /** Stream sequence the durable had acknowledged up to before the replay. */
  readonly previousAckFloor: number;
  /** Messages the durable will now deliver (its filter, from `startSeq` on). */
  readonly pending: number;
}

// ADR-60: a reset to a sequence is allowed only for these; the others have no fixed origin.
const RESETTABLE = new Set<string>([DeliverPolicy.All, DeliverPolicy.StartSequence, DeliverPolicy.StartTime]);

/**
 * Moves a durable's position back (or forward) to a stream sequence or time, so its handlers
 * receive those messages again. A durable's start cannot be edited; nats-server 2.14 added a
 * consumer reset that moves it in place, safely while apps consume. Older servers, or
 * durables that started at `new`/`last`, can only be deleted and created again (`recreate`).
 */
export async function replayConsumer(
  connection: JetStreamConnection,
  stream: string,
  durable: string,
  from: ReplayStart,
  options: ReplayOptions = {},
): Promise<ReplayResult> {
  const { jsm } = connection;
  const streamInfo = await streamInfoOrUndefined(jsm, stream);
  if (!streamInfo) throw new InvalidOptionsError(`Stream "${stream}" does not exist`);
  const info = await consumerInfo(connection, stream, durable);
  if (!info.config.durable_name) {
    throw new InvalidOptionsError(`Consumer "${durable}" on stream "${stream}" is ephemeral; only durables keep a position to replay`);
  }
  const startSeq = 'seq' in from ? checkSeq(from.seq) : await firstSeqAtOrAfter(connection, stream, from.time, streamInfo.state.last_seq);
  const previousAckFloor = info.ack_floor.stream_seq;
  const policy = info.config.deliver_policy;
  // Noted before the durable moves: its replayed messages may reach a handler right after.
  const markReplay = async (): Promise<void> => {
    const bucket = options.idempotencyBucket ?? DEFAULT_IDEMPOTENCY_BUCKET;
    try {
      await IdempotencyStore.markReplay(connection.nc, bucket, stream, durable, previousAckFloor);
    } catch (err) {
      throw new InvalidOptionsError(
        `Could not note the replay in idempotency bucket "${bucket}" (${err instanceof Error ? err.message : String(err)}); exactly-once handlers would run what they handled again. Nothing was replayed`,
      );
    }
  };

  if (!options.recreate) {
    if (!connection.serverAtLeast(2, 14, 0)) {
      throw new InvalidOptionsError(
        `nats-server ${connection.serverVersion} cannot reset a consumer in place (2.14+ can); stop the apps using "${durable}" and replay with --recreate, which deletes and recreates the durable`,
      );
    }
    if (!RESETTABLE.has(policy)) {
      throw new InvalidOptionsError(
        `Durable "${durable}" has deliver policy "${policy}", which the server cannot reset to a sequence; stop the apps using it and replay with --recreate`,
      );
    }
    await markReplay();
    try {
      const reset = await jsm.consumers.reset(stream, durable, startSeq);
      return { method: 'reset', stream, durable, startSeq: reset.reset_seq || startSeq, previousAckFloor, pending: reset.num_pending };
    } catch (err) {
      if (err instanceof JetStreamApiError) {
        throw new InvalidOptionsError(`The server refused to reset "${durable}" to seq ${startSeq}: ${err.message}`);
      }
      throw err;
    }
  }

  const config: Partial<ConsumerConfig> = { ...info.config, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq };
  delete config.opt_start_time;
  await markReplay();
  await jsm.consumers.delete(stream, durable);
  try {
    const created = await jsm.consumers.add(stream, config);
    return { method: 'recreate', stream, durable, startSeq, previousAckFloor, pending: created.num_pending };
  } catch (err) {
    // The old durable is gone; say exactly what to recreate so nothing is left half done.
    throw new InvalidOptionsError(
      `Deleted durable "${durable}" but could not create it again (${err instanceof Error ? err.message : String(err)}); its config was ${JSON.stringify(config)}`,
    );
  }
}

async function consumerInfo(connection: JetStreamConnection, stream: string, durable: string): Promise<ConsumerInfo> {
  try {
    return await connection.jsm.consumers.info(stream, durable);
  } catch (err) {
    if (hasApiCode(err, ApiCode.ConsumerNotFound)) {
      throw new InvalidOptionsError(`Consumer "${durable}" does not exist on stream "${stream}"`);
    }
    throw err;
  }
}

function checkSeq(seq: number): number {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new InvalidOptionsError(`start sequence must be an integer >= 1, got ${seq}`);
  return seq;
}

/**
 * The stream sequence of the first message stored at or after the time: an ordered consumer
 * reads one message and leaves nothing behind. Past the end, the next sequence to be stored.
 */
async function firstSeqAtOrAfter(connection: JetStreamConnection, stream: string, time: Date, lastSeq: number): Promise<number> {
  if (Number.isNaN(time.getTime())) throw new InvalidOptionsError('start time is not a valid date');
  const reader = await connection.js.consumers.get(stream, {
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: time.toISOString(),
  });
  try {
    const first = await reader.next({ expires: 2_000 });
    return first ? first.seq : lastSeq + 1;
  } finally {
    await reader.delete().catch(() => undefined);
  }
}
