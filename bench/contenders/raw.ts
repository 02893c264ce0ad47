import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { PUBLISH_WINDOW, deferred, profiler, uniqueName, type BenchContext } from '../support.js';

/**
 * The floor every other contender is measured against: `@nats-io/jetstream` used directly, the
 * way its docs show, with nothing between the message and the ack.
 */

/** consume() + ack of `n` messages; with `work`, up to `concurrency` of them at once. Returns ms. */
export async function rawConsume(ctx: BenchContext, stream: string, n: number, concurrency: number, work?: () => Promise<void>): Promise<number> {
  const durable = uniqueName('raw');
  await ctx.jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
  const consumer = await ctx.js.consumers.get(stream, durable);
  const messages = await consumer.consume({ max_messages: Math.max(2 * concurrency, 32) });
  let count = 0;
  let first = 0;
  let active = 0;
  const done = deferred();
  let release: (() => void) | undefined;
  for await (const m of messages) {
    if (count === 0 && first === 0) {
      first = performance.now();
      profiler.start();
    }
    if (!work) {
      m.ack();
      if (++count === n) break;
      continue;
    }
    while (active >= concurrency) await new Promise<void>((r) => (release = r));
    active++;
    void work().then(() => {
      m.ack();
      active--;
      release?.();
      if (++count === n) done.resolve();
    });
    if (count + active >= n) break;
  }
  if (work) await done.promise;
  const elapsed = performance.now() - first;
  profiler.stop();
  messages.stop();
  return elapsed;
}

export async function rawPublishSequential(ctx: BenchContext, subject: string, n: number, data: Uint8Array): Promise<void> {
  for (let i = 0; i < n; i++) await ctx.js.publish(subject, data);
}

/** Up to PUBLISH_WINDOW publishes awaiting their ack, awaited window by window. */
export async function rawPublishPipelined(ctx: BenchContext, subject: string, n: number, data: Uint8Array): Promise<void> {
  const window: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    window.push(ctx.js.publish(subject, data));
    if (window.length === PUBLISH_WINDOW) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
}

/** A durable on new messages that calls `record` with each payload, then acks. */
export async function rawSubscriber(ctx: BenchContext, stream: string, record: (data: Uint8Array) => void): Promise<() => Promise<void>> {
  const durable = uniqueName('rawlat');
  await ctx.jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.New });
  const consumer = await ctx.js.consumers.get(stream, durable);
  const messages = await consumer.consume({ max_messages: 32 });
  void (async () => {
    for await (const m of messages) {
      record(m.data);
      m.ack();
    }
  })();
  return async () => void messages.stop();
}
