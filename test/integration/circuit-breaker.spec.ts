import { Registry } from 'prom-client';
import { DeadLetterService, ServerFeatureUnavailableError, type EventContext } from '../../lib/index.js';
import { testNatsUrl, waitFor } from '../harness/index.js';
import { freshStream, handlerClass, sharedServerHooks, type JetStreamTestApp } from './kit.js';
import { hasFeature, refusal } from './server-features-kit.js';

/**
 * A handler whose dependency the test takes down and brings back (a flag): with the breaker, an
 * outage longer than the retry budget dead-letters nothing, the consumer is paused on the server
 * meanwhile, and every message is handled once the dependency is back.
 */
describe('circuit breaker (nats-server 2.11+)', () => {
  const hooks = sharedServerHooks();

  async function metric(registry: Registry, name: string, durable: string): Promise<number | undefined> {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
    return (m?.values as Array<{ value: number; labels: Record<string, unknown> }> | undefined)?.find((v) => v.labels.durable === durable)?.value;
  }

  async function deadLetterCount(app: JetStreamTestApp, dlqStream: string): Promise<number> {
    return (await app.inner.app.get(DeadLetterService).list({ stream: dlqStream })).length;
  }

  it('pauses the consumer after N failures, holds what failed, resumes after the cool-down, and dead-letters nothing that succeeds later', async () => {
    const { stream, subject, dlq, dlqStream } = await freshStream(hooks.client.jsm, 'BREAKER');
    const dependency = { down: true };
    const calls: Array<{ n: number; attempt: number; ok: boolean }> = [];
    const Handler = handlerClass(
      'Payments',
      subject('charge'),
      // Without the breaker, 3 attempts 200 ms apart would dead-letter every message of this outage.
      { durable: 'payments', dlq, retry: { maxAttempts: 3, backoff: 'fixed', initialDelayMs: 200, jitter: false }, circuitBreaker: { failures: 3, coolDownMs: 2_000 } },
      (payload: unknown, ctx: EventContext) => {
        const n = (payload as { n: number }).n;
        calls.push({ n, attempt: ctx.attempt, ok: !dependency.down });
        if (dependency.down) throw new Error('payment provider unreachable');
      },
    );
    const registry = new Registry();
    const options = { servers: testNatsUrl(), metrics: { registry } };
    if (!hasFeature(hooks.client, 'consumerPause')) {
      const startup = hooks.apps.start(options, [Handler]);
      await expect(startup).rejects.toBeInstanceOf(ServerFeatureUnavailableError);
      await expect(hooks.apps.start(options, [Handler])).rejects.toThrow(refusal(hooks.client, 'consumerPause'));
      await expect(hooks.apps.start(options, [Handler])).rejects.toThrow(/^Payments\.handle: circuitBreaker: consumer pause/);
      return;
    }
    const app = await hooks.apps.start(options, [Handler]);
    expect(await metric(registry, 'nats_circuit_breaker_state', 'payments')).toBe(0);
    for (let n = 1; n <= 10; n++) await app.publisher.publish(subject('charge'), { n });

    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'payments')).paused === true, {
      timeoutMs: 15_000,
      message: 'the consumer paused on the server after 3 failures',
    });
    expect(await metric(registry, 'nats_circuit_breaker_state', 'payments')).toBeGreaterThanOrEqual(1);
    // Two failed trials: it re-opened twice, each a new cool-down.
    await waitFor(async () => ((await metric(registry, 'nats_circuit_breaker_opened_total', 'payments')) ?? 0) >= 3, {
      timeoutMs: 30_000,
      message: 'the breaker re-opened after two failed trials',
    });
    // Far more failed calls than the 10 × 3 attempts there are, and not one dead letter.
    expect(await deadLetterCount(app, dlqStream)).toBe(0);
    const failedWhileDown = calls.length;

    dependency.down = false;
    await waitFor(() => new Set(calls.filter((c) => c.ok).map((c) => c.n)).size === 10, {
      timeoutMs: 30_000,
      message: 'all 10 messages handled once the dependency is back',
    });
    await waitFor(async () => {
      const info = await hooks.client.jsm.consumers.info(stream, 'payments');
      return info.num_pending === 0 && info.num_ack_pending === 0 && info.paused !== true;
    }, { timeoutMs: 15_000, message: 'nothing left pending, and the consumer no longer paused' });
    expect(await deadLetterCount(app, dlqStream)).toBe(0);
    expect(await metric(registry, 'nats_circuit_breaker_state', 'payments')).toBe(0);
    // Each message succeeded once; no attempt number passed the budget of 3 (holds are not counted).
    expect(calls.filter((c) => c.ok).map((c) => c.n).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(Math.max(...calls.map((c) => c.attempt))).toBeLessThanOrEqual(3);
    expect(failedWhileDown).toBeGreaterThanOrEqual(5);
    expect(app.logger.find(/circuit breaker opened \(3 consecutive failures\); consumer paused until/, 'warn')).toHaveLength(1);
    expect(app.logger.find(/circuit breaker closed; the trial succeeded/, 'log')).toHaveLength(1);
  });

  it('a message that always fails cannot keep the breaker open: its failed trials count as attempts, it is dead-lettered, and the next trial closes the breaker', async () => {
    const { stream, subject, dlq, dlqStream } = await freshStream(hooks.client.jsm, 'BREAKER4');
    if (!hasFeature(hooks.client, 'consumerPause')) return;
    const handled: number[] = [];
    const poisonAttempts: number[] = [];
    const Handler = handlerClass(
      'Orders',
      subject('x'),
      { durable: 'orders', dlq, retry: { maxAttempts: 3, backoff: 'fixed', initialDelayMs: 100, jitter: false }, circuitBreaker: { failures: 1, coolDownMs: 1_000 } },
      (payload: unknown, ctx: EventContext) => {
        const n = (payload as { n: number }).n;
        if (n === 0) {
          poisonAttempts.push(ctx.attempt);
          throw new Error('this one always fails');
        }
        handled.push(n);
      },
    );
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    for (let n = 0; n <= 5; n++) await app.publisher.publish(subject('x'), { n });
    await waitFor(() => handled.length === 5, { timeoutMs: 30_000, message: 'the 5 good messages handled after the poison one was given up on' });
    // Opened by its first failure (held, uncounted), then trials at attempts 1, 2 and 3.
    expect(poisonAttempts).toEqual([1, 1, 2, 3]);
    const letters = await app.inner.app.get(DeadLetterService).list({ stream: dlqStream });
    expect(letters).toHaveLength(1);
    expect(letters[0].reason).toBe('exhausted');
    expect(letters[0].originalSequence).toBe(1);
    expect(app.logger.find(/circuit breaker closed; the trial succeeded/, 'log')).toHaveLength(1);
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'orders')).num_ack_pending === 0, { message: 'nothing left pending' });
  });

  it('exactly-once: a message held past its lease runs once after the outage, its done mark written', async () => {
    const { stream, subject, dlq, dlqStream } = await freshStream(hooks.client.jsm, 'BREAKER5');
    if (!hasFeature(hooks.client, 'consumerPause')) return;
    const dependency = { down: true };
    const succeeded: number[] = [];
    const Handler = handlerClass(
      'Ledger',
      subject('x'),
      // The lease lasts the ack wait (2 s); the breaker holds for at least one 3 s cool-down.
      { durable: 'ledger', dlq, delivery: 'exactly-once', ackWaitMs: 2_000, retry: { maxAttempts: 3, backoff: 'fixed', initialDelayMs: 100, jitter: false }, circuitBreaker: { failures: 2, coolDownMs: 3_000 } },
      (payload: unknown) => {
        if (dependency.down) throw new Error('down');
        succeeded.push((payload as { n: number }).n);
      },
    );
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    for (let n = 1; n <= 4; n++) await app.publisher.publish(subject('x'), { n });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'ledger')).paused === true, { timeoutMs: 15_000, message: 'paused' });
    dependency.down = false;
    await waitFor(() => new Set(succeeded).size === 4, { timeoutMs: 30_000, message: 'all 4 handled after the outage' });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'ledger')).num_ack_pending === 0, { timeoutMs: 15_000, message: 'all acked' });
    expect(succeeded.sort((a, b) => a - b)).toEqual([1, 2, 3, 4]);
    expect(await deadLetterCount(app, dlqStream)).toBe(0);
    expect(app.logger.find(/lease on seq \d+ was taken over/)).toEqual([]);
    expect(app.logger.find(/done mark could not be written|could not record completion/)).toEqual([]);
  });

  it('ordered handler (orderBy): held messages keep each key\'s order, and all run once after the outage', async () => {
    const { stream, subject, dlq, dlqStream } = await freshStream(hooks.client.jsm, 'BREAKER6');
    if (!hasFeature(hooks.client, 'consumerPause')) return;
    const dependency = { down: true };
    const succeeded: Array<{ key: string; n: number }> = [];
    const Handler = handlerClass(
      'Ordered',
      subject('*'),
      { durable: 'ordered', dlq, concurrency: 3, orderBy: 'subject', retry: { maxAttempts: 3, backoff: 'fixed', initialDelayMs: 100, jitter: false }, circuitBreaker: { failures: 2, coolDownMs: 1_500 } },
      (payload: unknown, ctx: EventContext) => {
        if (dependency.down) throw new Error('down');
        succeeded.push({ key: ctx.subject, n: (payload as { n: number }).n });
      },
    );
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    for (let n = 1; n <= 4; n++) for (const key of ['a', 'b', 'c']) await app.publisher.publish(subject(key), { n });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'ordered')).paused === true, { timeoutMs: 15_000, message: 'paused' });
    dependency.down = false;
    await waitFor(() => succeeded.length === 12, { timeoutMs: 30_000, message: 'all 12 handled after the outage' });
    for (const key of ['a', 'b', 'c']) {
      expect(succeeded.filter((s) => s.key === subject(key)).map((s) => s.n)).toEqual([1, 2, 3, 4]);
    }
    expect(await deadLetterCount(app, dlqStream)).toBe(0);
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'ordered')).num_ack_pending === 0, { timeoutMs: 15_000, message: 'all acked' });
  });

  it('two instances on one durable: the pause only ever grows while the dependency is down, and each message is handled once after', async () => {
    const { stream, subject, dlq, dlqStream } = await freshStream(hooks.client.jsm, 'BREAKER2');
    if (!hasFeature(hooks.client, 'consumerPause')) return; // the refusal is the first test's
    const dependency = { down: true };
    const succeeded: number[] = [];
    const make = (name: string) =>
      handlerClass(
        name,
        subject('charge'),
        { durable: 'shared', dlq, concurrency: 2, prefetch: 2, retry: { maxAttempts: 3, backoff: 'fixed', initialDelayMs: 200, jitter: false }, circuitBreaker: { failures: 2, coolDownMs: 1_500 } },
        (payload: unknown) => {
          if (dependency.down) throw new Error('down');
          succeeded.push((payload as { n: number }).n);
        },
      );
    const a = await hooks.apps.start({ servers: testNatsUrl() }, [make('A')]);
    const b = await hooks.apps.start({ servers: testNatsUrl() }, [make('B')]);
    for (let n = 1; n <= 20; n++) await a.publisher.publish(subject('charge'), { n });

    // Whichever instance trips (and re-trips on each failed trial) pauses the consumer for both:
    // the other gets nothing meanwhile, and may never trip itself. The server's pause end never
    // moves back: an instance pauses only when it would extend the pause, and none resumes it.
    const ends: number[] = [];
    await waitFor(async () => {
      const info = await hooks.client.jsm.consumers.info(stream, 'shared');
      if (info.paused) ends.push(new Date(info.config.pause_until!).getTime());
      return a.logger.find(/circuit breaker opened/, 'warn').length + b.logger.find(/circuit breaker opened/, 'warn').length >= 4;
    }, { timeoutMs: 30_000, intervalMs: 200, message: 'the breakers opened 4 times between them (failed trials)' });
    expect(new Set(ends).size).toBeGreaterThanOrEqual(2);
    expect(ends.length).toBeGreaterThan(0);
    for (let i = 1; i < ends.length; i++) expect(ends[i]).toBeGreaterThanOrEqual(ends[i - 1]);
    expect(await deadLetterCount(a, dlqStream)).toBe(0);

    dependency.down = false;
    await waitFor(() => new Set(succeeded).size === 20, { timeoutMs: 30_000, message: 'all 20 handled after the outage' });
    await waitFor(async () => {
      const info = await hooks.client.jsm.consumers.info(stream, 'shared');
      return info.num_pending === 0 && info.num_ack_pending === 0;
    }, { timeoutMs: 15_000, message: 'nothing left pending' });
    expect(succeeded).toHaveLength(20);
    expect(await deadLetterCount(a, dlqStream)).toBe(0);
  });

  it('an app stopping while the breaker holds messages hands them back at once instead of waiting out the cool-down', async () => {
    const { stream, subject, dlq } = await freshStream(hooks.client.jsm, 'BREAKER3');
    if (!hasFeature(hooks.client, 'consumerPause')) return;
    const Handler = handlerClass('Held', subject('x'), { durable: 'held', dlq, concurrency: 3, ackWaitMs: 60_000, circuitBreaker: { failures: 1, coolDownMs: 120_000 } }, () => {
      throw new Error('down');
    });
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    for (let n = 1; n <= 3; n++) await app.publisher.publish(subject('x'), { n });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'held')).paused === true, { timeoutMs: 15_000, message: 'paused' });
    const started = Date.now();
    await app.close();
    // Well within the 120 s cool-down and the 10 s shutdown timeout.
    expect(Date.now() - started).toBeLessThan(9_000);
    expect(app.logger.find(/still running after/, 'warn')).toEqual([]);
    // Handed back (a nak: a paused server keeps nak'ed messages counted as ack-pending until it
    // redelivers them), not acked or dead-lettered: the next instance gets all 3 once the pause
    // ends, long before the 60 s ack wait would have handed them back.
    await hooks.client.jsm.consumers.pause(stream, 'held', new Date(Date.now() + 250));
    const handled = new Set<number>();
    const Next = handlerClass('Next', subject('x'), { durable: 'held', dlq, ackWaitMs: 60_000 }, (payload: unknown) => void handled.add((payload as { n: number }).n));
    await hooks.apps.start({ servers: testNatsUrl() }, [Next]);
    await waitFor(() => handled.size === 3, { timeoutMs: 15_000, message: 'the 3 handed-back messages handled by the next instance' });
  });
});
