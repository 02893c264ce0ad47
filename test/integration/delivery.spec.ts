import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { DeadLetterHeaders, DeadLetterService, EventContext, OnEvent, TerminalError } from '../../lib/index.js';
import { testNatsUrl, waitFor } from '../harness/index.js';
import { freshStream, Order, sharedServerHooks, waitForDeadLetters } from './kit.js';

const hooks = sharedServerHooks();

describe('at-most-once', () => {
  it('confirms the ack before running, and never runs a failing message again', async () => {
    const { stream, subject, dlqStream, dlq } = await freshStream(hooks.client.jsm, 'AMO');
    const calls: string[] = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('x'), { durable: 'amo', delivery: 'at-most-once', dlq })
      async handle(order: Order) {
        calls.push(order.id);
        if (order.id === 'bad') throw new Error('handler failed');
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('x'), { id: 'bad', qty: 1 });
    await app.publisher.publish(subject('x'), { id: 'after', qty: 1 });
    await waitFor(() => calls.includes('after'), { timeoutMs: 10_000, message: 'sentinel handled' });
    // A copy is parked for inspection, but the original is never redelivered.
    const letters = await waitForDeadLetters(app, dlqStream, 1);
    expect(letters[0].reason).toBe('at-most-once');
    const info = await hooks.client.jsm.consumers.info(stream, 'amo');
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
    expect(calls.filter((c) => c === 'bad')).toHaveLength(1);
  });
});

describe('at-least-once retry and dead letters', () => {
  it('retries with growing delays, then dead-letters the original bytes with full headers', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'ALO');
    const attempts: Array<{ at: number; attempt: number }> = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('pay'), {
        durable: 'payments',
        retry: { maxAttempts: 4, initialDelayMs: 300, backoff: 'exponential', jitter: false },
      })
      async handle(_order: Order, ctx: EventContext) {
        attempts.push({ at: performance.now(), attempt: ctx.attempt });
        throw new Error(`downstream unavailable (attempt ${ctx.attempt})`);
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    const bytes = new TextEncoder().encode('{"id":"o-1","qty":3}');
    const published = await app.publisher.publish(subject('pay'), bytes, { msgId: 'order-o-1', headers: { 'x-tenant': 'acme' } });
    // The default: stream DLQ, subject dlq.<stream>.<durable>.
    const letters = await waitForDeadLetters(app, 'DLQ', 1, stream);

    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3, 4]);
    const gaps = attempts.slice(1).map((a, i) => a.at - attempts[i].at);
    // 300, 600, 1200 ms by the backoff: never less (the server holds the nak for that long),
    // while a loaded machine may add any slack; the upper bound only catches a wrong delay.
    [300, 600, 1200].forEach((expected, i) => {
      expect(gaps[i]).toBeGreaterThanOrEqual(expected - 20);
      expect(gaps[i]).toBeLessThan(expected + 10_000);
    });

    const letter = letters[0];
    expect(Buffer.from(letter.data).equals(Buffer.from(bytes))).toBe(true);
    expect(letter.subject).toBe(`dlq.${stream}.payments`);
    expect(letter.originalSubject).toBe(subject('pay'));
    expect(letter.originalStream).toBe(stream);
    expect(letter.originalSequence).toBe(published.seq);
    expect(letter.originalMsgId).toBe('order-o-1');
    expect(letter.consumer).toBe('payments');
    expect(letter.attempts).toBe(4);
    expect(letter.reason).toBe('exhausted');
    expect(letter.error).toEqual({ name: 'Error', message: 'downstream unavailable (attempt 4)' });
    expect(letter.failedAt!.getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(letter.headers['x-tenant']).toEqual(['acme']);
    expect(letter.headers[DeadLetterHeaders.Handler]).toEqual(['Handler.handle']);
    // Terminated after the copy was stored: nothing pending, nothing left to redeliver.
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'payments')).num_ack_pending === 0, {
      timeoutMs: 5_000,
      message: 'original settled',
    });
  });

  it('sends terminal errors and invalid payloads to the dead-letter stream on the first attempt', async () => {
    const { subject, dlqStream, dlq } = await freshStream(hooks.client.jsm, 'TERM');
    let calls = 0;
    @Injectable()
    class Handler {
      @OnEvent(subject('t'), { durable: 'terminal', dlq })
      async handle(order: Order) {
        calls++;
        if (order.id === 'reject') throw new TerminalError('order can never be billed');
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('t'), { id: 'reject', qty: 1 });
    await app.publisher.publish(subject('t'), { id: 'typo', qty: 'three' });
    await app.publisher.publish(subject('t'), new TextEncoder().encode('not json'));
    const letters = await waitForDeadLetters(app, dlqStream, 3);
    const byReason = Object.fromEntries(letters.map((l) => [l.text(), l]));
    expect(byReason['{"id":"reject","qty":1}'].reason).toBe('terminal');
    expect(byReason['{"id":"reject","qty":1}'].error.name).toBe('TerminalError');
    expect(byReason['{"id":"typo","qty":"three"}'].reason).toBe('invalid-payload');
    expect(byReason['{"id":"typo","qty":"three"}'].error.message).toMatch(/qty/);
    expect(byReason['not json'].reason).toBe('invalid-payload');
    expect(letters.every((l) => l.attempts === 1)).toBe(true);
    expect(calls).toBe(1);
  });

  it('honours retryable(): a non-retryable error is dead-lettered at once', async () => {
    const { subject, dlqStream, dlq } = await freshStream(hooks.client.jsm, 'CLS');
    let calls = 0;
    class Permanent extends Error {}
    @Injectable()
    class Handler {
      @OnEvent(subject('c'), { durable: 'cls', dlq, retryable: (e) => !(e instanceof Permanent) })
      async handle() {
        calls++;
        throw new Permanent('no such customer');
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('c'), { id: 'x', qty: 1 });
    const [letter] = await waitForDeadLetters(app, dlqStream, 1);
    expect(letter.reason).toBe('terminal');
    expect(calls).toBe(1);
  });

  it('loses nothing when the dead-letter publish fails: it retries until the stream is back', async () => {
    const { subject, dlqStream, dlq } = await freshStream(hooks.client.jsm, 'DLQDOWN');
    @Injectable()
    class Handler {
      @OnEvent(subject('d'), { durable: 'down', dlq, retry: { maxAttempts: 1, initialDelayMs: 200, jitter: false } })
      async handle() {
        throw new TerminalError('always');
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    await hooks.client.jsm.streams.delete(dlqStream);
    await app.publisher.publish(subject('d'), { id: 'precious', qty: 1 });
    await waitFor(() => app.logger.find('dead-letter publish failed').length > 0, {
      timeoutMs: 10_000,
      message: 'a failed dead-letter publish',
    });
    await hooks.client.jsm.streams.add({ name: dlqStream, subjects: [dlq.subject] });
    const letters = await waitForDeadLetters(app, dlqStream, 1);
    expect(letters[0].text()).toBe('{"id":"precious","qty":1}');
    expect(letters[0].attempts).toBeGreaterThan(1);
  });

  it('redrives a dead letter back to its subject, where the fixed handler takes it', async () => {
    const { subject, dlqStream, dlq } = await freshStream(hooks.client.jsm, 'REDRIVE');
    let broken = true;
    const handled: string[] = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('r'), { durable: 'redrive', dlq })
      async handle(order: Order) {
        if (broken) throw new TerminalError('bug in handler');
        handled.push(order.id);
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('r'), { id: 'r-1', qty: 2 }, { msgId: 'r-1' });
    const [letter] = await waitForDeadLetters(app, dlqStream, 1);
    broken = false;
    const service = app.inner.app.get(DeadLetterService);
    const result = await service.redrive(letter.seq, dlqStream);
    expect(result.duplicate).toBe(false);
    await waitFor(() => handled.includes('r-1'), { timeoutMs: 10_000, message: 'redriven message handled' });
    expect(await service.peek(letter.seq, dlqStream)).toBeUndefined();
    expect(await service.list({ stream: dlqStream })).toHaveLength(0);
  });

  it('purges dead letters by consumer', async () => {
    const { subject, dlqStream, dlq } = await freshStream(hooks.client.jsm, 'PURGE');
    @Injectable()
    class Handler {
      @OnEvent(subject('p'), { durable: 'purge', dlq })
      async handle() {
        throw new TerminalError('x');
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publishBatch([1, 2, 3].map((i) => ({ subject: subject('p'), payload: { i } })));
    await waitForDeadLetters(app, dlqStream, 3);
    const service = app.inner.app.get(DeadLetterService);
    // Listing reads through a throwaway ordered consumer each time: none may stay behind.
    for (let i = 0; i < 5; i++) expect(await service.list({ stream: dlqStream })).toHaveLength(3);
    expect((await app.connection.jsm.streams.info(dlqStream)).state.consumer_count).toBe(0);
    expect(await service.purge({ stream: dlqStream, consumer: 'purge' })).toBe(3);
    expect(await service.list({ stream: dlqStream })).toHaveLength(0);
  });
});

describe('long handlers', () => {
  it('keep their message with working() past the ack wait: no redelivery while running', async () => {
    const { stream, subject } = await freshStream(hooks.client.jsm, 'LONG');
    const deliveries: number[] = [];
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    @Injectable()
    class Handler {
      // Heartbeats go every third of the ack wait: 1.5 s leaves a second for a loaded event loop.
      @OnEvent(subject('l'), { durable: 'long', ackWaitMs: 1_500 })
      async handle(_o: Order, ctx: EventContext) {
        deliveries.push(ctx.deliveryCount);
        await released;
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('l'), { id: 'slow', qty: 1 });
    await waitFor(() => deliveries.length === 1, { timeoutMs: 10_000, message: 'handler started' });
    // Three ack waits pass while the handler runs; the server must not hand the message out again.
    const started = Date.now();
    await waitFor(() => Date.now() - started >= 4_500, { timeoutMs: 10_000, intervalMs: 100, message: 'three ack waits' });
    const during = await hooks.client.jsm.consumers.info(stream, 'long');
    expect(during.num_redelivered).toBe(0);
    expect(deliveries).toEqual([1]);
    release();
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'long')).ack_floor.stream_seq === 1, {
      timeoutMs: 10_000,
      message: 'acked after finishing',
    });
    expect(deliveries).toEqual([1]);
  });
});

describe('ordering with concurrency', () => {
  it('keeps per-key order while different keys run in parallel, even across in-place retries', async () => {
    const { subject } = await freshStream(hooks.client.jsm, 'ORD');
    const perKey = new Map<string, number[]>();
    let inFlight = 0;
    let maxInFlight = 0;
    let failedOnce = false;
    @Injectable()
    class Handler {
      @OnEvent(subject('*'), {
        durable: 'ordered',
        concurrency: 8,
        orderBy: 'subject',
        retry: { initialDelayMs: 50, jitter: false },
      })
      async handle(payload: { n: number }, ctx: EventContext) {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          await new Promise((r) => setTimeout(r, (payload.n * 7) % 5));
          if (ctx.subject.endsWith('.k1') && payload.n === 3 && !failedOnce) {
            failedOnce = true;
            throw new Error('transient');
          }
          const list = perKey.get(ctx.subject) ?? [];
          list.push(payload.n);
          perKey.set(ctx.subject, list);
        } finally {
          inFlight--;
        }
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    const keys = ['k1', 'k2', 'k3', 'k4'];
    const items = [];
    for (let n = 0; n < 25; n++) for (const k of keys) items.push({ subject: subject(k), payload: { n } });
    await app.publisher.publishBatch(items);
    await waitFor(() => keys.every((k) => (perKey.get(subject(k))?.length ?? 0) === 25), {
      timeoutMs: 20_000,
      message: 'all 100 handled',
    });
    for (const k of keys) expect(perKey.get(subject(k))).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(failedOnce).toBe(true);
    expect(maxInFlight).toBeGreaterThan(1);
    expect(maxInFlight).toBeLessThanOrEqual(4);
  });
});
