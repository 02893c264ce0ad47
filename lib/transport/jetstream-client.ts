import { ClientProxy, type ReadPacket, type WritePacket } from '@nestjs/microservices';
import { errors as natsErrors } from '@nats-io/transport-node';
import { JetStreamConnection } from '../connection/jetstream-connection.js';
import { InvalidOptionsError, JetStreamModuleError } from '../errors/jetstream-errors.js';
import type { JetStreamModuleOptions, ResolvedModuleOptions } from '../options/jetstream-module-options.js';
import { resolveModuleOptions } from '../options/resolve-module-options.js';
import { JetStreamObservability } from '../observability/jetstream-observability.js';
import { JetStreamPublisher, type PublishResult } from '../producer/jetstream-publisher.js';
import { assertPublishSubject } from '../options/subject-validation.js';
import { decodeJson, encodePayload, prepareCodecs } from '../serialization/codec.js';
import { JetStreamRecord } from './jetstream-record.js';
import { storedByStream, type ReplyEnvelope } from './reply-envelope.js';

export interface JetStreamClientOptions
  extends Pick<JetStreamModuleOptions, 'servers' | 'connection' | 'publishTimeoutMs' | 'publishRetries' | 'metrics' | 'tracing' | 'codec'> {
  /** How long `send()` waits for a reply; default 5 000 ms. */
  requestTimeoutMs?: number;
}

/** Raised to `send()` subscribers when no reply came in time. */
export class RequestTimeoutError extends JetStreamModuleError {
  constructor(
    readonly pattern: string,
    readonly timeoutMs: number,
  ) {
    super(`No reply on "${pattern}" within ${timeoutMs} ms`);
  }
}

/**
 * `ClientProxy` on the same engine: `emit()` publishes to JetStream and completes with the
 * stream's ack (`{ stream, seq, duplicate }`), encoded by the `codec` option or the record's;
 * `send()` is a core NATS request, always JSON. One connection
 * per client, however many calls race to open it.
 */
export class JetStreamClient extends ClientProxy {
  private connecting?: Promise<JetStreamConnection>;
  private publisher?: JetStreamPublisher;
  private readonly resolved: ResolvedModuleOptions;
  private readonly requestTimeoutMs: number;

  constructor(options: JetStreamClientOptions = {}) {
    super();
    this.resolved = resolveModuleOptions({
      servers: options.servers,
      connection: options.connection,
      publishTimeoutMs: options.publishTimeoutMs,
      publishRetries: options.publishRetries,
      metrics: options.metrics,
      tracing: options.tracing,
      codec: options.codec,
    });
    const timeout = options.requestTimeoutMs ?? 5_000;
    if (!Number.isInteger(timeout) || timeout < 1) {
      throw new InvalidOptionsError(`requestTimeoutMs must be an integer >= 1, got ${JSON.stringify(options.requestTimeoutMs)}`);
    }
    this.requestTimeoutMs = timeout;
  }

  connect(): Promise<JetStreamConnection> {
    // Every concurrent first call awaits the same promise: one connection, not one per call.
    this.connecting ??= this.open().then(
      ({ connection, observability }) => {
        this.publisher = new JetStreamPublisher(connection, this.resolved, observability);
        return connection;
      },
      (err: unknown) => {
        this.connecting = undefined;
        throw err;
      },
    );
    return this.connecting;
  }

  private async open(): Promise<{ connection: JetStreamConnection; observability: JetStreamObservability }> {
    // Before connecting, as the module does: a missing optional peer leaves no connection open.
    const observability = await JetStreamObservability.create(this.resolved);
    await prepareCodecs([this.resolved.codec]);
    return { connection: await JetStreamConnection.open(this.resolved), observability };
  }

  async close(): Promise<void> {
    const pending = this.connecting;
    this.connecting = undefined;
    this.publisher = undefined;
    const connection = await pending?.catch(() => undefined);
    await connection?.close();
  }

  unwrap<T>(): T {
    throw new Error('JetStreamClient.unwrap() is not supported; await connect() for the JetStreamConnection');
  }

  protected async dispatchEvent<T = PublishResult>(packet: ReadPacket): Promise<T> {
    await this.connect();
    const subject = this.normalizePattern(packet.pattern);
    const { data, options } = packet.data instanceof JetStreamRecord ? packet.data : { data: packet.data, options: undefined };
    return (await this.publisher!.publish(subject, data, options)) as T;
  }

  protected publish(packet: ReadPacket, callback: (packet: WritePacket) => void): () => void {
    let disposed = false;
    const subject = this.normalizePattern(packet.pattern);
    const run = async () => {
      assertPublishSubject(subject);
      const connection = await this.connect();
      let reply;
      try {
        reply = await connection.nc.request(subject, encodePayload(packet.data), { timeout: this.requestTimeoutMs });
      } catch (err) {
        if (err instanceof natsErrors.TimeoutError) throw new RequestTimeoutError(subject, this.requestTimeoutMs);
        throw err;
      }
      const body = decodeJson(reply.data);
      const captured = storedByStream(subject, body);
      if (captured) throw captured;
      const envelope = body as ReplyEnvelope;
      if (disposed) return;
      if ('err' in envelope) callback({ err: envelope.err, isDisposed: true });
      else callback({ response: envelope.response, isDisposed: true });
    };
    run().catch((err: unknown) => {
      if (!disposed) callback({ err, isDisposed: true });
    });
    return () => {
      disposed = true;
    };
  }
}
