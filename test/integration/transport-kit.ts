import type { INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DeliverPolicy, jetstream, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { JetStreamServer } from '../../lib/transport/index.js';
import { uniqueName, waitFor } from '../harness/index.js';
import { CapturingLogger } from '../support/test-app.js';

/** Helpers of the microservices transport specs: a server app, a stream of its own, dead letters. */
export class TransportKit {
  private readonly closers: Array<() => Promise<unknown>> = [];

  constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
  ) {}

  async closeAll(): Promise<void> {
    for (const close of this.closers.splice(0).reverse()) await close().catch(() => undefined);
  }

  onClose(close: () => Promise<unknown>): void {
    this.closers.push(close);
  }

  async freshStream(prefix: string): Promise<{ stream: string; subject: (s: string) => string }> {
    const stream = uniqueName(prefix);
    await this.jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    this.closers.push(() => this.jsm.streams.delete(stream));
    return { stream, subject: (s) => `${stream}.${s}` };
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
