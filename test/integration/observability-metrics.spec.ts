import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { Registry, register as defaultRegistry } from 'prom-client';
import { Kvm } from '@nats-io/kv';
import { BatchContext, OnEvent, OnKvChange, PublishRejectedError, TerminalError, kvChangeOf, type EventContext } from '../../lib/index.js';
import { deferred, testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { createStream, handlerClass, sharedServerHooks } from './kit.js';
import { hasFeature, refusal } from './server-features-kit.js';

/**
 * Metrics against a real server: known traffic gives exact counter values, the lag gauge
 * follows the server's consumer info, and with metrics off nothing is registered.
 */

const shared = sharedServerHooks();
const apps = shared.apps;

class FlakyDownstreamError extends Error {}

type Labels = Record<string, string>;

/** A sample's value: counters and gauges by name, histograms by `<name>_count` / `_bucket`. */
async function sample(registry: Registry, series: string, labels: Labels): Promise<number | undefined> {
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const value of metric.values as Array<{ labels: Labels; value: number; metricName?: string }>) {
      const name = value.metricName ?? metric.name;
      if (name !== series) continue;
      if (Object.entries(labels).every(([k, v]) => String(value.labels[k]) === v)) return value.value;
    }
  }
  return undefined;
}

async function natsMetricNames(registry: Registry): Promise<string[]> {
  return (await registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.includes('nats_'));
}

describe('metrics off', () => {
  it('registers nothing in prom-client\'s default registry while handling and publishing', async () => {
    const stream = uniqueName('MOFF');
    await createStream(shared.client.jsm, stream, [`${stream}.>`]);
    const handled = deferred();
    const Handler = handlerClass('OffHandler', `${stream}.x`, { durable: 'off' }, () => handled.resolve());
    const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(`${stream}.x`, { n: 1 });
    await handled.promise;
    expect(await natsMetricNames(defaultRegistry)).toEqual([]);
  });
});

describe('metrics', () => {
  it('counts known traffic exactly: successes, retries, dead letters, errors, latency, publishes', async () => {
    const stream = uniqueName('MET');
    const dlqStream = uniqueName('MDL');
    await createStream(shared.client.jsm, stream, [`${stream}.>`]);
    const registry = new Registry();
    const ok = `${stream}.ok`;
    const flaky = `${stream}.flaky`;
    const Ok = handlerClass('OkHandler', ok, { durable: 'ok' }, () => undefined);
    const Flaky = handlerClass(
      'FlakyHandler',
      flaky,
      {
        durable: 'flaky',
        retry: { maxAttempts: 3, initialDelayMs: 100, backoff: 'fixed', jitter: false },
        dlq: { stream: dlqStream, subject: `${dlqStream}.letters` },
      },
      (payload, ctx) => {
        const { id } = payload as { id: string };
        if (id === 'poison' || (id === 'retry-once' && ctx.attempt === 1)) throw new FlakyDownstreamError(`${id} attempt ${ctx.attempt}`);
      },
    );
    const app = await apps.start({ servers: testNatsUrl(), metrics: { registry } }, [Ok, Flaky]);
    try {
      for (let i = 0; i < 3; i++) await app.publisher.publish(ok, { id: `ok-${i}` });
      await app.publisher.publish(flaky, { id: 'retry-once' });
      await app.publisher.publish(flaky, { id: 'poison' });
      // A duplicate msg-id is stored once; a failed expectation is rejected by the server.
      await app.publisher.publish(ok, { id: 'ok-0-again' }, { msgId: 'dup-1' });
      await app.publisher.publish(ok, { id: 'ok-0-again' }, { msgId: 'dup-1' });
      await expect(app.publisher.publish(ok, { id: 'x' }, { expect: { lastSequence: 999_999 } })).rejects.toBeInstanceOf(PublishRejectedError);

      const consumed = (subject: string, durable: string, status: string) =>
        sample(registry, 'nats_consume_total', { subject, durable, status });
      let seen = '';
      await waitFor(
        async () => {
          seen = (await registry.metrics()).split('\n').filter((l) => l.startsWith('nats_consume_total')).join('\n');
          return (await consumed(flaky, 'flaky', 'dead_letter')) === 1 && (await consumed(ok, 'ok', 'success')) === 4;
        },
        { timeoutMs: 20_000, message: () => `counters so far:\n${seen}` },
      );
      // Everything settled on the server: nothing more can be counted after this.
      await waitFor(async () => {
        const [a, b] = await Promise.all([shared.client.jsm.consumers.info(stream, 'ok'), shared.client.jsm.consumers.info(stream, 'flaky')]);
        return a.num_pending + a.num_ack_pending + b.num_pending + b.num_ack_pending === 0;
      }, { timeoutMs: 10_000, message: 'both consumers idle' });

      expect(await consumed(ok, 'ok', 'success')).toBe(4);
      expect(await consumed(flaky, 'flaky', 'success')).toBe(1);
      // retry-once failed once, poison twice before its third and last attempt.
      expect(await consumed(flaky, 'flaky', 'retry')).toBe(3);
      expect(await consumed(flaky, 'flaky', 'dead_letter')).toBe(1);
      expect(await consumed(ok, 'ok', 'retry')).toBeUndefined();
      expect(await sample(registry, 'nats_consume_errors_total', { subject: flaky, error_type: 'FlakyDownstreamError' })).toBe(4);
      expect(await sample(registry, 'nats_consume_errors_total', { subject: ok })).toBeUndefined();
      expect(await sample(registry, 'nats_dead_letters_total', { subject: flaky, durable: 'flaky', reason: 'exhausted' })).toBe(1);

      // A latency sample per handler call: 4 on ok; 2 + 3 calls on flaky.
      expect(await sample(registry, 'nats_consume_latency_seconds_count', { subject: ok })).toBe(4);
      expect(await sample(registry, 'nats_consume_latency_seconds_count', { subject: flaky })).toBe(5);
      expect(await sample(registry, 'nats_handler_duration_seconds_count', { subject: ok, durable: 'ok' })).toBe(4);
      expect(await sample(registry, 'nats_handler_duration_seconds_count', { subject: flaky, durable: 'flaky' })).toBe(5);
      const latencySum = await sample(registry, 'nats_consume_latency_seconds_sum', { subject: ok });
      expect(latencySum).toBeGreaterThanOrEqual(0);
      expect(latencySum).toBeLessThan(30);

      expect(await sample(registry, 'nats_publish_total', { subject: ok, status: 'success' })).toBe(4);
      expect(await sample(registry, 'nats_publish_total', { subject: ok, status: 'duplicate' })).toBe(1);
      expect(await sample(registry, 'nats_publish_total', { subject: ok, status: 'error' })).toBe(1);
      expect(await sample(registry, 'nats_publish_total', { subject: flaky, status: 'success' })).toBe(2);
      // The dead-letter copy goes through the same publisher.
      expect(await sample(registry, 'nats_publish_total', { subject: `${dlqStream}.letters`, status: 'success' })).toBe(1);
    } finally {
      await app.close();
      await shared.client.jsm.streams.delete(dlqStream).catch(() => undefined);
    }
  });

  it('counts at-most-once, exactly-once and terminated deliveries by how they ended', async () => {
    const stream = uniqueName('MSEM');
    await createStream(shared.client.jsm, stream, [`${stream}.>`]);
    const registry = new Registry();
    const calls: string[] = [];
    const AtMostOnce = handlerClass('AmoHandler', `${stream}.amo`, { durable: 'amo', delivery: 'at-most-once', dlq: false }, (payload) => {
      calls.push(`amo:${(payload as { id: string }).id}`);
      if ((payload as { id: string }).id === 'bad') throw new Error('lost on purpose');
    });
    const ExactlyOnce = handlerClass('EoHandler', `${stream}.eo`, { durable: 'eo', delivery: 'exactly-once' }, () => {
      calls.push('eo');
    });
    const Terminal = handlerClass('TermHandler', `${stream}.term`, { durable: 'term', dlq: false }, () => {
      calls.push('term');
      throw new TerminalError('never valid');
    });
    const app = await apps.start({ servers: testNatsUrl(), metrics: { registry } }, [AtMostOnce, ExactlyOnce, Terminal]);
    await app.publisher.publish(`${stream}.amo`, { id: 'bad' });
    await app.publisher.publish(`${stream}.amo`, { id: 'good' });
    await app.publisher.publish(`${stream}.eo`, { id: 'once' });
    await app.publisher.publish(`${stream}.term`, { id: 'x' });
    const consumed = (subject: string, durable: string, status: string) =>
      sample(registry, 'nats_consume_total', { subject: `${stream}.${subject}`, durable, status });
    await waitFor(
      async () =>
        (await consumed('amo', 'amo', 'success')) === 1 &&
        (await consumed('amo', 'amo', 'failed')) === 1 &&
        (await consumed('eo', 'eo', 'success')) === 1 &&
        (await consumed('term', 'term', 'terminated')) === 1,
      { timeoutMs: 15_000, message: () => `calls so far: ${calls.join(', ')}` },
    );
    expect(await sample(registry, 'nats_dead_letters_total', { subject: `${stream}.term` })).toBeUndefined();
    expect(await sample(registry, 'nats_consume_errors_total', { subject: `${stream}.term`, error_type: 'TerminalError' })).toBe(1);
    expect(await sample(registry, 'nats_consume_errors_total', { subject: `${stream}.amo`, error_type: 'Error' })).toBe(1);
  });

  it('samples consumer lag and ack pending from the server, and drops the series on shutdown', async () => {
    const stream = uniqueName('MLAG');
    await createStream(shared.client.jsm, stream, [`${stream}.>`]);
    for (let i = 0; i < 10; i++) await shared.client.js.publish(`${stream}.work`, JSON.stringify({ i }));
    const registry = new Registry();
    const release = deferred();
    const Slow = handlerClass('SlowHandler', `${stream}.work`, { durable: 'slow', concurrency: 1, prefetch: 1 }, () => release.promise);
    const app = await apps.start({ servers: testNatsUrl(), metrics: { registry, lagIntervalMs: 100 } }, [Slow]);
    const lag = () => sample(registry, 'nats_consumer_lag', { stream, durable: 'slow' });
    const ackPending = () => sample(registry, 'nats_consumer_ack_pending', { stream, durable: 'slow' });

    // The handler holds its message, so the consumer's numbers stay put once the pulls are in.
    let info = await shared.client.jsm.consumers.info(stream, 'slow');
    await waitFor(
      async () => {
        const before = info;
        info = await shared.client.jsm.consumers.info(stream, 'slow');
        return info.num_ack_pending >= 1 && info.num_pending === before.num_pending && info.num_pending + info.num_ack_pending === 10;
      },
      { timeoutMs: 10_000, intervalMs: 200, message: () => `stable consumer, last ${info.num_pending} pending / ${info.num_ack_pending} ack pending` },
    );
    expect(info.num_pending).toBeGreaterThanOrEqual(7);
    await waitFor(async () => (await lag()) === info.num_pending && (await ackPending()) === info.num_ack_pending, {
      timeoutMs: 5_000,
      message: () => `lag gauge ${info.num_pending}`,
    });

    release.resolve();
    await waitFor(async () => (await lag()) === 0 && (await ackPending()) === 0, { timeoutMs: 10_000, message: 'lag back to 0' });

    await app.close();
    expect(await lag()).toBeUndefined();
  });

  it('uses the prefix, and prom-client\'s default registry with metrics: true', async () => {
    const stream = uniqueName('MDEF');
    await createStream(shared.client.jsm, stream, [`${stream}.>`]);
    const handled = deferred();
    const Handler = handlerClass('DefaultRegistryHandler', `${stream}.x`, { durable: 'def' }, () => handled.resolve());
    const app = await apps.start({ servers: testNatsUrl(), metrics: true }, [Handler]);
    await app.publisher.publish(`${stream}.x`, { n: 1 });
    await handled.promise;
    await waitFor(async () => (await sample(defaultRegistry, 'nats_consume_total', { subject: `${stream}.x`, status: 'success' })) === 1, {
      timeoutMs: 5_000,
      message: 'counted in the default registry',
    });

    const registry = new Registry();
    const Prefixed = handlerClass('PrefixedHandler', `${stream}.y`, { durable: 'pre' }, () => undefined);
    const other = await apps.start({ servers: testNatsUrl(), metrics: { registry, prefix: 'orders_' } }, [Prefixed]);
    await other.publisher.publish(`${stream}.y`, { n: 1 });
    await waitFor(async () => (await sample(registry, 'orders_nats_consume_total', { subject: `${stream}.y`, status: 'success' })) === 1, {
      timeoutMs: 5_000,
      message: 'counted under the prefix',
    });
    expect((await natsMetricNames(registry)).every((n) => n.startsWith('orders_nats_'))).toBe(true);
  });

  it('refuses a metric name taken by another metric type, naming it', async () => {
    const registry = new Registry();
    const { Gauge } = await import('prom-client');
    new Gauge({ name: 'nats_consume_total', help: 'not ours', registers: [registry] });
    await expect(apps.start({ servers: testNatsUrl(), metrics: { registry } })).rejects.toThrow(/"nats_consume_total" is already registered/);
  });
});

describe('metrics of batch handlers', () => {
  it('counts each message of a batch by how it was settled, one latency sample per message and one duration per call', async () => {
    const stream = uniqueName('MBAT');
    const dlqStream = uniqueName('MBDL');
    await createStream(shared.client.jsm, stream, [`${stream}.>`]);
    const registry = new Registry();
    const subject = `${stream}.q`;
    let calls = 0;
    @Injectable()
    class BatchMetricsHandler {
      @OnEvent(subject, { durable: 'mbatch', dlq: { stream: dlqStream, subject: `${dlqStream}.letters` }, batch: { maxMessages: 10, maxWaitMs: 300 } })
      async handle(payloads: Array<{ id: string }>, batch: BatchContext<{ id: string }>) {
        calls++;
        payloads.forEach((p, i) => p.id === 'bad' && batch.fail(i, new TerminalError('bad row')));
      }
    }
    for (const id of ['a', 'b', 'bad', 'c']) await shared.client.js.publish(subject, JSON.stringify({ id }));
    const app = await apps.start({ servers: testNatsUrl(), metrics: { registry } }, [BatchMetricsHandler]);
    try {
      await waitFor(async () => (await sample(registry, 'nats_consume_total', { subject, durable: 'mbatch', status: 'dead_letter' })) === 1, {
        timeoutMs: 15_000,
        message: 'the failed message dead-lettered',
      });
      expect(await sample(registry, 'nats_consume_total', { subject, durable: 'mbatch', status: 'success' })).toBe(3);
      expect(await sample(registry, 'nats_consume_latency_seconds_count', { subject })).toBe(4);
      expect(await sample(registry, 'nats_handler_duration_seconds_count', { subject, durable: 'mbatch' })).toBe(calls);
      expect(calls).toBe(1);
    } finally {
      await app.close();
      await shared.client.jsm.streams.delete(dlqStream).catch(() => undefined);
    }
  });
});

describe('metrics of schedule fires and KV change handlers', () => {
  it('counts a message a schedule fired once per fire (nats_schedule_fires_total), not per retry; a plain message is no fire', async () => {
    const stream = uniqueName('MSCH');
    const subject = `${stream}.reminder`;
    const registry = new Registry();
    const calls: number[] = [];
    const Reminder = handlerClass('ReminderHandler', subject, { durable: 'reminders', retry: { maxAttempts: 3, initialDelayMs: 100, backoff: 'fixed', jitter: false } }, (_payload, ctx) => {
      calls.push(ctx.attempt);
      // The fired message fails once: its retry is the same fire.
      if (ctx.header('Nats-Scheduler') && ctx.attempt === 1) throw new FlakyDownstreamError('first try');
    });
    if (!hasFeature(shared.client, 'scheduleAt')) {
      await createStream(shared.client.jsm, stream, [`${stream}.>`]);
      const app = await apps.start({ servers: testNatsUrl(), metrics: { registry } }, [Reminder]);
      await expect(app.publisher.schedule(subject, { id: 1 }, { at: new Date(Date.now() + 1_000) })).rejects.toThrow(refusal(shared.client, 'scheduleAt'));
      expect(await sample(registry, 'nats_schedule_fires_total', {})).toBeUndefined();
      return;
    }
    const app = await apps.start(
      { servers: testNatsUrl(), metrics: { registry }, streams: [{ name: stream, subjects: [`${stream}.>`], allow_msg_schedules: true }] },
      [Reminder],
    );
    try {
      await app.publisher.publish(subject, { id: 0 });
      await app.publisher.schedule(subject, { id: 1 }, { at: new Date(Date.now() + 1_000), name: 'cart-c1' });
      await waitFor(async () => (await sample(registry, 'nats_consume_total', { subject, durable: 'reminders', status: 'success' })) === 2, {
        timeoutMs: 15_000,
        message: 'the plain message and the fired one (after its retry) handled',
      });
      expect(calls).toEqual([1, 1, 2]);
      expect(await sample(registry, 'nats_schedule_fires_total', { schedule: 'cart-c1', subject, durable: 'reminders' })).toBe(1);
      expect(await sample(registry, 'nats_consume_total', { subject, durable: 'reminders', status: 'retry' })).toBe(1);
    } finally {
      await app.close();
      await shared.client.jsm.streams.delete(stream).catch(() => undefined);
    }
  });

  it('counts a KV change handler\'s outcomes in nats_consume_total under its $KV subject: success, retry, dead letter', async () => {
    const bucket = uniqueName('mkv').toLowerCase().replace(/[^a-z0-9_-]/g, '_');
    const dlqStream = uniqueName('MKVDL');
    const registry = new Registry();
    const kv = await new Kvm(shared.client.nc).create(bucket, { history: 5 });
    class Carts {
      @OnKvChange(bucket, 'cart.*', { durable: 'carts', retry: { maxAttempts: 2, initialDelayMs: 100, backoff: 'fixed', jitter: false }, dlq: { stream: dlqStream, subject: `${dlqStream}.letters` } })
      handle(_value: unknown, ctx: EventContext): void {
        if (kvChangeOf(ctx)!.key === 'cart.bad') throw new FlakyDownstreamError('downstream refused');
      }
    }
    const app = await apps.start({ servers: testNatsUrl(), metrics: { registry } }, [Carts]);
    const subject = `$KV.${bucket}.cart.*`;
    try {
      await kv.put('cart.a', JSON.stringify({ items: 1 }));
      await kv.delete('cart.a');
      await kv.put('cart.bad', JSON.stringify({ items: 2 }));
      await waitFor(async () => (await sample(registry, 'nats_dead_letters_total', { subject, durable: 'carts', reason: 'exhausted' })) === 1, {
        timeoutMs: 15_000,
        message: 'cart.bad dead-lettered after 2 attempts',
      });
      expect(await sample(registry, 'nats_consume_total', { subject, durable: 'carts', status: 'success' })).toBe(2);
      expect(await sample(registry, 'nats_consume_total', { subject, durable: 'carts', status: 'retry' })).toBe(1);
      expect(await sample(registry, 'nats_consume_total', { subject, durable: 'carts', status: 'dead_letter' })).toBe(1);
      expect(await sample(registry, 'nats_consume_errors_total', { subject, error_type: 'FlakyDownstreamError' })).toBe(2);
      // No circuit breaker on this handler: no breaker series for it.
      expect(await sample(registry, 'nats_circuit_breaker_state', { subject })).toBeUndefined();
    } finally {
      await app.close();
      await shared.client.jsm.streams.delete(`KV_${bucket}`).catch(() => undefined);
      await shared.client.jsm.streams.delete(dlqStream).catch(() => undefined);
    }
  });
});
