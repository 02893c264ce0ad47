import type { INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { JetStreamServer } from '../../lib/transport/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { CapturingLogger } from '../support/test-app.js';

/** Helpers of the microservices transport specs: a server app, a stream of its own, dead letters. */
export class TransportKit {
  private readonly closers: Array<() => Promise<unknown>> = [];
  private client?: { nc: NatsConnection; jsm: JetStreamManager };

  /** The spec's hooks: a connection of its own, and everything a test opened closed after it. */
  static hooks(): TransportKit {
    const kit = new TransportKit();
    beforeAll(async () => {
      const nc = await connect({ servers: testNatsUrl() });
      kit.client = { nc, jsm: await jetstreamManager(nc) };
    });
    afterEach(() => kit.closeAll());
    afterAll(() => kit.client?.nc.close());
    return kit;
  }

  get nc(): NatsConnection {
    if (!this.client) throw new Error('TransportKit used before beforeAll ran');
    return this.client.nc;
  }

  get jsm(): JetStreamManager {
    if (!this.client) throw new Error('TransportKit used before beforeAll ran');
    return this.client.jsm;
  }

  async closeAll(): Promise<void> {
    for (const close of this.closers.splice(0).reverse()) await close().catch(() => undefined);
  }

  onClose(close: () => Promise<unknown>): void {
    this.closers.push(close);
  }

  async freshStream(prefix: string): Promise<{ stream: string; subject: (s: string) => string }> {
    const stream = uniqueName(prefix);
    await this.createStream({ name: stream, subjects: [`${stream}.>`] });
    return { stream, subject: (s) => `${stream}.${s}` };
  }

  /** A stream made straight on the server (not by the module), deleted after the test. */
  async createStream(config: Partial<StreamConfig> & { name: string }): Promise<void> {
    await this.jsm.streams.add(config);
    this.deleteStreamAfter(config.name);
  }

  /** Deletes, after the test, a stream the module under test creates. */
  deleteStreamAfter(name: string): void {
    this.closers.push(() => this.jsm.streams.delete(name));
  }

  /** A microservice on JetStreamServer; `configure` runs before `listen()` (global filters...). */
  async microservice(
    module: unknown,
    options: ConstructorParameters<typeof JetStreamServer>[0],
    configure?: (app: INestMicroservice) => void,
  ): Promise<{ app: INestMicroservice; logger: CapturingLogger }> {
    const logger = new CapturingLogger();
    const app = await NestFactory.createMicroservice(module as never, { strategy: new JetStreamServer(options), logger });
    this.closers.push(() => app.close());
    configure?.(app);
    await app.listen();
    return { app, logger };
  }

  /** Stored dead letters of a stream, read with an ordered consumer (no state left behind). */
  async readDeadLetters(stream: string, count: number): Promise<Array<{ data: string; headers: Record<string, string> }>> {
    const out: Array<{ data: string; headers: Record<string, string> }> = [];
    await waitFor(async () => (await this.jsm.streams.info(stream)).state.messages >= count, { timeoutMs: 15_000, message: `${count} dead letters` });
    const consumer = await jetstream(this.nc).consumers.get(stream, { deliver_policy: DeliverPolicy.All });
    const batch = await consumer.fetch({ max_messages: count, expires: 2_000 });
    for await (const m of batch) {
      const headers: Record<string, string> = {};
      for (const k of m.headers?.keys() ?? []) headers[k] = m.headers!.get(k);
      out.push({ data: m.string(), headers });
    }
    return out;
  }
}
