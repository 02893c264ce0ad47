import { connect, nuid, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import { defaultPrefetch } from '../../lib/discovery/resolve-handler-options.js';
import { PUBLISH_WINDOW, deferred, encoder, profiler, uniqueName, type CpuSpent, startCpuMeter } from '../support.js';

/**
 * The floor every target is measured against: `@nats-io/jetstream` as a performance-minded
 * engineer would use it, with the same tricks the module uses and nothing else:
 * - its own connection with `noAsyncTraces` (no stack trace built per request), separate from
 *   the connection that publishes;
 * - acks queued and written once per event-loop turn (`setImmediate`), not one write each;
 * - the module's pull batch for the same concurrency (`defaultPrefetch`);
 * - its clock stops once the last acks have been handed to the socket, as the module's does.
 * The handler is an async function, as the module's `@OnEvent` handlers are.
 */

export type TunedHandler = (data: Uint8Array) => Promise<void>;

/** A connection of its own, configured as the module configures its connection. */
export function tunedConnection(url: string): Promise<NatsConnection> {
  return connect({ servers: url, noAsyncTraces: true, name: uniqueName('tuned') });
}

/** Acks queued during one event-loop turn, written together at its end. */
class AckQueue {
  private queue: JsMsg[] = [];
  push(msg: JsMsg): void {
    if (this.queue.push(msg) === 1) setImmediate(this.flush);
  }
  readonly flush = (): void => {
    const q = this.queue;
    this.queue = [];
    for (const m of q) m.ack();
  };
}

/**
 * consume() + ack of `n` messages, up to `concurrency` handler calls at once. Returns ms from
 * the first message to the flush of the last ack, and the CPU spent over that section.
 */
export async function tunedConsume(
  url: string,
  stream: string,
  n: number,
  concurrency: number,
  handler: TunedHandler,
): Promise<{ ms: number; cpu: CpuSpent }> {
  const nc = await tunedConnection(url);
  try {
    const jsm = await jetstreamManager(nc);
    const durable = uniqueName('tuned');
    await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
    const consumer = await jetstream(nc).consumers.get(stream, durable);
    const messages = await consumer.consume({ max_messages: defaultPrefetch(concurrency) });
    const acks = new AckQueue();
    let first = 0;
    let meter: { stop(): CpuSpent } | undefined;
    let count = 0;
    let started = 0;
    let active = 0;
    let release: (() => void) | undefined;
    const done = deferred();
    const finished = (m: JsMsg) => {
      acks.push(m);
      if (++count === n) done.resolve();
    };
    for await (const m of messages) {
      if (first === 0) {
        first = performance.now();
        meter = startCpuMeter();
        profiler.start();
      }
      if (concurrency === 1) {
        await handler(m.data);
        finished(m);
        if (count === n) break;
        continue;
      }
      while (active >= concurrency) await new Promise<void>((r) => (release = r));
      active++;
      void handler(m.data).then(() => {
        active--;
        finished(m);
        const r = release;
        release = undefined;
        r?.();
      });
      if (++started === n) break;
    }
    await done.promise;
    acks.flush();
    const ms = performance.now() - first;
    const cpu = meter!.stop();
    profiler.stop();
    messages.stop();
    return { ms, cpu };
  } finally {
    await nc.close();
  }
}

/** The publisher side: its own `noAsyncTraces` connection, pre-encoded bytes. */
export async function tunedPublisher(url: string): Promise<{ js: JetStreamClient; close(): Promise<void> }> {
  const nc = await tunedConnection(url);
  return { js: jetstream(nc), close: () => nc.close() };
}

/**
 * Up to PUBLISH_WINDOW publishes awaiting their ack, awaited window by window. With `asModule`,
 * each message does by hand what the module's publisher does: JSON-encode the object and send a
 * fresh `Nats-Msg-Id` (which the stream then deduplicates).
 */
export async function tunedPublishPipelined(js: JetStreamClient, subject: string, n: number, data: Uint8Array, asModule?: { payload: unknown }): Promise<void> {
  const window: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    window.push(asModule ? js.publish(subject, encoder.encode(JSON.stringify(asModule.payload)), { msgID: nuid.next() }) : js.publish(subject, data));
    if (window.length === PUBLISH_WINDOW) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
}

/** A durable on new messages on a connection of its own; `record` gets each payload, acks coalesced. */
export async function tunedSubscriber(url: string, stream: string, record: (data: Uint8Array) => void): Promise<() => Promise<void>> {
  const nc = await tunedConnection(url);
  const jsm = await jetstreamManager(nc);
  const durable = uniqueName('tunedlat');
  await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.New });
  const consumer = await jetstream(nc).consumers.get(stream, durable);
  const messages = await consumer.consume({ max_messages: defaultPrefetch(1) });
  const acks = new AckQueue();
  void (async () => {
    for await (const m of messages) {
      record(m.data);
      acks.push(m);
    }
  })();
  return async () => {
    messages.stop();
    acks.flush();
    await nc.close();
  };
}
