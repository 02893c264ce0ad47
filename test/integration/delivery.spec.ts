import 'reflect-metadata';
import {
  Injectable,
  UseGuards,
  UseInterceptors,
  UsePipes,
  ValidationPipe,
  type ArgumentMetadata,
  type CallHandler,
  type CanActivate,
  type ExecutionContext,
  type NestInterceptor,
  type PipeTransform,
} from '@nestjs/common';
import { APP_PIPE } from '@nestjs/core';
import { IsInt, IsString } from 'class-validator';
import { Kvm } from '@nats-io/kv';
import { tap, type Observable } from 'rxjs';
import {
  DeadLetterHeaders,
  DeadLetterService,
  EventContext,
  JetStreamDeadLetterInterceptor,
  JetStreamRetryInterceptor,
  OnEvent,
  TerminalError,
  isJetStreamContext,
  IDEMPOTENCY_KEY_HEADER,
} from '../../lib/index.js';
import { IdempotencyStore } from '../../lib/delivery/idempotency-store.js';
import { replayConsumer } from '../../lib/provisioning/consumer-replay.js';
import { deferred, testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { WorkerProcess } from '../reliability/child-app.js';
import { AppTracker, createStream, openClient, type RawClient } from './kit.js';

class Order {
  @IsString() id!: string;
  @IsInt() qty!: number;
}

const apps = new AppTracker();
let client: RawClient;

beforeAll(async () => {
  client = await openClient(testNatsUrl());
});
afterAll(async () => {
  await client.close();
});
afterEach(async () => {
  await apps.closeAll();
});

async function setup(prefix: string): Promise<{
  stream: string;
  subject: (s: string) => string;
  dlqStream: string;
  dlq: { stream: string; subject: string };
}> {
  const stream = uniqueName(prefix);
  await createStream(client.jsm, stream, [`${stream}.>`]);
  // A dead-letter stream per test keeps listings independent on the shared server; its subject
  // stays outside `dlq.>`, which the default DLQ stream of other tests claims.
  const dlqStream = uniqueName('DL');
  return { stream, subject: (s) => `${stream}.${s}`, dlqStream, dlq: { stream: dlqStream, subject: `${dlqStream}.letters` } };
}

async function deadLetters(
  app: { inner: { app: { get: (t: typeof DeadLetterService) => DeadLetterService } } },
  dlqStream: string,
  count: number,
  originalStream?: string,
) {
  const service = app.inner.app.get(DeadLetterService);
  let letters = await service.list({ stream: dlqStream, originalStream });
  await waitFor(async () => (letters = await service.list({ stream: dlqStream, originalStream })).length >= count, {
    timeoutMs: 15_000,
    message: `${count} dead letter(s) in ${dlqStream}`,
  });
  return letters;
}

describe('at-most-once', () => {
  it('confirms the ack before running, and never runs a failing message again', async () => {
    const { stream, subject, dlqStream, dlq } = await setup('AMO');
    const calls: string[] = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('x'), { durable: 'amo', delivery: 'at-most-once', dlq })
      async handle(order: Order) {
        calls.push(order.id);
        if (order.id === 'bad') throw new Error('handler failed');
      }
    }
    const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('x'), { id: 'bad', qty: 1 });
    await app.publisher.publish(subject('x'), { id: 'after', qty: 1 });
    await waitFor(() => calls.includes('after'), { timeoutMs: 10_000, message: 'sentinel handled' });
    // A copy is parked for inspection, but the original is never redelivered.
    const letters = await deadLetters(app, dlqStream, 1);
    expect(letters[0].reason).toBe('at-most-once');
    const info = await client.jsm.consumers.info(stream, 'amo');
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
    expect(calls.filter((c) => c === 'bad')).toHaveLength(1);
  });
});

describe('at-least-once retry and dead letters', () => {
  it('retries with growing delays, then dead-letters the original bytes with full headers', async () => {
    const { stream, subject } = await setup('ALO');
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
    const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    const bytes = new TextEncoder().encode('{"id":"o-1","qty":3}');
    const published = await app.publisher.publish(subject('pay'), bytes, { msgId: 'order-o-1', headers: { 'x-tenant': 'acme' } });
    // The default: stream DLQ, subject dlq.<stream>.<durable>.
    const letters = await deadLetters(app, 'DLQ', 1, stream);

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
    await waitFor(async () => (await client.jsm.consumers.info(stream, 'payments')).num_ack_pending === 0, {
      timeoutMs: 5_000,
      message: 'original settled',
    });
  });

  it('sends terminal errors and invalid payloads to the dead-letter stream on the first attempt', async () => {
    const { subject, dlqStream, dlq } = await setup('TERM');
    let calls = 0;
    @Injectable()
    class Handler {
      @OnEvent(subject('t'), { durable: 'terminal', dlq })
      async handle(order: Order) {
        calls++;
        if (order.id === 'reject') throw new TerminalError('order can never be billed');
      }
    }
    const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('t'), { id: 'reject', qty: 1 });
    await app.publisher.publish(subject('t'), { id: 'typo', qty: 'three' });
    await app.publisher.publish(subject('t'), new TextEncoder().encode('not json'));
    const letters = await deadLetters(app, dlqStream, 3);
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
    const { subject, dlqStream, dlq } = await setup('CLS');
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
    const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('c'), { id: 'x', qty: 1 });
    const [letter] = await deadLetters(app, dlqStream, 1);
    expect(letter.reason).toBe('terminal');
    expect(calls).toBe(1);
  });

  it('loses nothing when the dead-letter publish fails: it retries until the stream is back', async () => {
    const { subject, dlqStream, dlq } = await setup('DLQDOWN');
    @Injectable()
    class Handler {
      @OnEvent(subject('d'), { durable: 'down', dlq, retry: { maxAttempts: 1, initialDelayMs: 200, jitter: false } })
      async handle() {
        throw new TerminalError('always');
      }
    }
    const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    await client.jsm.streams.delete(dlqStream);
    await app.publisher.publish(subject('d'), { id: 'precious', qty: 1 });
    await waitFor(() => app.logger.find('dead-letter publish failed').length > 0, {
      timeoutMs: 10_000,
      message: 'a failed dead-letter publish',
    });
    await client.jsm.streams.add({ name: dlqStream, subjects: [dlq.subject] });
    const letters = await deadLetters(app, dlqStream, 1);
    expect(letters[0].text()).toBe('{"id":"precious","qty":1}');
    expect(letters[0].attempts).toBeGreaterThan(1);
  });

  it('redrives a dead letter back to its subject, where the fixed handler takes it', async () => {
    const { subject, dlqStream, dlq } = await setup('REDRIVE');
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
    const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('r'), { id: 'r-1', qty: 2 }, { msgId: 'r-1' });
    const [letter] = await deadLetters(app, dlqStream, 1);
    broken = false;
    const service = app.inner.app.get(DeadLetterService);
    const result = await service.redrive(letter.seq, dlqStream);
    expect(result.duplicate).toBe(false);
    await waitFor(() => handled.includes('r-1'), { timeoutMs: 10_000, message: 'redriven message handled' });
    expect(await service.peek(letter.seq, dlqStream)).toBeUndefined();
    expect(await service.list({ stream: dlqStream })).toHaveLength(0);
  });

  it('purges dead letters by consumer', async () => {
    const { subject, dlqStream, dlq } = await setup('PURGE');
    @Injectable()
    class Handler {
      @OnEvent(subject('p'), { durable: 'purge', dlq })
      async handle() {
        throw new TerminalError('x');
      }
    }
    const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publishBatch([1, 2, 3].map((i) => ({ subject: subject('p'), payload: { i } })));
    await deadLetters(app, dlqStream, 3);
    const service = app.inner.app.get(DeadLetterService);
    // Listing reads through a throwaway ordered consumer each time: none may stay behind.
    for (let i = 0; i < 5; i++) expect(await service.list({ stream: dlqStream })).toHaveLength(3);
    expect((await app.connection.jsm.streams.info(dlqStream)).state.consumer_count).toBe(0);
    expect(await service.purge({ stream: dlqStream, consumer: 'purge' })).toBe(3);
    expect(await service.list({ stream: dlqStream })).toHaveLength(0);
  });
});

describe('exactly-once', () => {
  it('stores a repeated msgId once and handles it once', async () => {
    const { stream, subject } = await setup('EO');
    const handled: number[] = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('e'), { durable: 'eo', delivery: 'exactly-once' })
      async handle(_o: Order, ctx: EventContext) {
        handled.push(ctx.sequence);
      }
    }
    const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    const first = await app.publisher.publish(subject('e'), { id: 'e', qty: 1 }, { msgId: 'biz-key-1' });
    const second = await app.publisher.publish(subject('e'), { id: 'e', qty: 1 }, { msgId: 'biz-key-1' });
    expect(second).toEqual({ stream, seq: first.seq, duplicate: true });
    await app.publisher.publish(subject('e'), { id: 'sentinel', qty: 1 });
    await waitFor(() => handled.length === 2, { timeoutMs: 10_000, message: 'two distinct messages handled' });
    expect(handled).toEqual([first.seq, first.seq + 1]);
    expect((await client.jsm.streams.info(stream)).state.messages).toBe(2);
  });

  it('re-runs a message whose holder died mid-handler on a second instance, and acks a later copy of it without running', async () => {
    const { stream, subject } = await setup('EOREC');
    const kv = await new Kvm(client.nc).create('nestjs_jetstream_idempotency', { history: 1, ttl: 24 * 3600 * 1000 });
    const key = IdempotencyStore.key(stream, 'eorec', 'crashed-1');
    // The first instance: its own process, whose handler never finishes, killed mid-handler.
    const worker = await WorkerProcess.start({
      servers: testNatsUrl(),
      subject: subject('k'),
      durable: 'eorec',
      delivery: 'exactly-once',
      ackWaitMs: 1_000,
      concurrency: 1,
      shutdownTimeoutMs: 1_000,
      minHandlerMs: 600_000,
      maxHandlerMs: 600_000,
    });
    try {
      const tool = await apps.start({ servers: testNatsUrl() }, []);
      const crashed = await tool.publisher.publish(subject('k'), { id: 'crashed', qty: 1 }, { msgId: 'crashed-1' });
      await waitFor(() => worker.inFlight().includes('crashed'), { timeoutMs: 10_000, message: 'the first instance running it' });
      const held = (await kv.get(key))!.json<{ s: string; q: number; o: string }>();
      expect(held).toMatchObject({ s: 'p', q: crashed.seq });
      worker.signal('SIGKILL');
      await worker.exited;

      // The second instance: its own Nest app and connection on the same durable.
      const handled: Array<{ id: string; delivery: number }> = [];
      @Injectable()
      class Handler {
        @OnEvent(subject('k'), { durable: 'eorec', delivery: 'exactly-once', ackWaitMs: 1_000 })
        async handle(order: Order, ctx: EventContext) {
          handled.push({ id: order.id, delivery: ctx.deliveryCount });
        }
      }
      const second = await apps.start({ servers: testNatsUrl() }, [Handler]);
      // Redelivered once the ack wait ran out; the dead holder's lease had lapsed, so it runs here.
      await waitFor(() => handled.length === 1, { timeoutMs: 15_000, message: 'the redelivery handled by the second instance' });
      expect(handled[0].id).toBe('crashed');
      expect(handled[0].delivery).toBeGreaterThanOrEqual(2);
      await waitFor(async () => (await client.jsm.consumers.info(stream, 'eorec')).num_ack_pending === 0, { timeoutMs: 10_000, message: 'acked' });
      // The record now names the same sequence, taken over by the second instance.
      const taken = (await kv.get(key))!.json<{ s: string; q: number; o: string }>();
      expect(taken).toMatchObject({ s: 'p', q: crashed.seq });
      expect(taken.o).not.toBe(held.o);
      // A later copy of it (a publish repeated with another msg-id) is a duplicate: acked, not run,
      // also by an instance that never saw it (a third app: only the record can tell it).
      await second.close();
      const third = await apps.start({ servers: testNatsUrl() }, [Handler]);
      await third.publisher.publish(subject('k'), { id: 'crashed-copy', qty: 1 }, { msgId: 'copy-1', headers: { [IDEMPOTENCY_KEY_HEADER]: 'crashed-1' } });
      await third.publisher.publish(subject('k'), { id: 'fresh', qty: 1 }, { msgId: 'fresh-1' });
      await waitFor(() => handled.some((h) => h.id === 'fresh'), { timeoutMs: 10_000, message: 'sentinel handled' });
      await waitFor(async () => (await client.jsm.consumers.info(stream, 'eorec')).num_ack_pending === 0, { timeoutMs: 10_000, message: 'copy acked' });
      expect(handled.map((h) => h.id)).toEqual(['crashed', 'fresh']);
    } finally {
      await worker.dispose();
    }
  });

  it('writes one record per message: the confirmed ack stands for success', async () => {
    const { stream, subject } = await setup('EOONE');
    const handled: string[] = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('w'), { durable: 'eoone', delivery: 'exactly-once', concurrency: 8 })
      async handle(order: Order) {
        handled.push(order.id);
      }
    }
    // A bucket of its own, so its stream's last sequence counts exactly this test's writes.
    const bucket = uniqueName('eo_one');
    const app = await apps.start({ servers: testNatsUrl(), idempotency: { bucket } }, [Handler]);
    await app.publisher.publishBatch(Array.from({ length: 50 }, (_, i) => ({ subject: subject('w'), payload: { id: `w${i}`, qty: 1 }, options: { msgId: `w-${i}` } })));
    await waitFor(() => handled.length === 50, { timeoutMs: 10_000, message: '50 handled' });
    await waitFor(async () => (await client.jsm.consumers.info(stream, 'eoone')).num_ack_pending === 0, { timeoutMs: 5_000, message: 'all 50 acked' });
    const kvState = (await client.jsm.streams.info(`KV_${bucket}`)).state;
    expect(kvState.last_seq).toBe(50);
    expect(kvState.messages).toBe(50);
    expect(handled.sort()).toEqual(Array.from({ length: 50 }, (_, i) => `w${i}`).sort());
    await client.jsm.streams.delete(`KV_${bucket}`);
  });

  it('treats a copy that arrives while the first is running as a duplicate; a failing first still carries the message', async () => {
    const { stream, subject } = await setup('EOCOPY');
    const calls: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let failOnce = true;
    @Injectable()
    class Handler {
      @OnEvent(subject('c'), { durable: 'eocopy', delivery: 'exactly-once', concurrency: 4, retry: { maxAttempts: 3, initialDelayMs: 200, jitter: false } })
      async handle(order: Order) {
        calls.push(order.id);
        if (order.id === 'first') {
          await gate;
          if (failOnce) {
            failOnce = false;
            throw new Error('transient');
          }
        }
      }
    }
    const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    const key = { [IDEMPOTENCY_KEY_HEADER]: 'order-7' };
    await app.publisher.publish(subject('c'), { id: 'first', qty: 1 }, { msgId: 'c-1', headers: key });
    await waitFor(() => calls.includes('first'), { timeoutMs: 10_000, message: 'first running' });
    await app.publisher.publish(subject('c'), { id: 'copy', qty: 1 }, { msgId: 'c-2', headers: key });
    // The copy (consumer sequence 2) is acked while the first (1) is still running.
    await waitFor(
      async () => {
        const info = await client.jsm.consumers.info(stream, 'eocopy');
        return info.delivered.consumer_seq === 2 && info.num_ack_pending === 1;
      },
      { timeoutMs: 10_000, message: 'copy acked while first runs' },
    );
    expect(calls).toEqual(['first']);
    release();
    await waitFor(() => calls.length === 2, { timeoutMs: 10_000, message: 'first retried' });
    await waitFor(async () => (await client.jsm.consumers.info(stream, 'eocopy')).num_ack_pending === 0, { timeoutMs: 10_000, message: 'all acked' });
    expect(calls).toEqual(['first', 'first']);
  });

  it('skips handled messages when the consumer is replayed', async () => {
    const { stream, subject } = await setup('EOREPLAY');
    const handled: string[] = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('r'), { durable: 'eoreplay', delivery: 'exactly-once' })
      async handle(order: Order) {
        handled.push(order.id);
      }
    }
    const settled = (ackFloor: number, message: string) =>
      waitFor(async () => (await client.jsm.consumers.info(stream, 'eoreplay')).ack_floor.stream_seq === ackFloor, { timeoutMs: 10_000, message });
    let app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    for (const id of ['a', 'b', 'c']) await app.publisher.publish(subject('r'), { id, qty: 1 }, { msgId: `r-${id}` });
    await settled(3, 'three handled and acked');
    await app.close();
    // `nestjs-jetstream replay --recreate` with the app stopped, then the durable deleted again so
    // the app creates it with its own config: the procedure the CLI prints.
    const tool = await apps.start({ servers: testNatsUrl() }, []);
    expect((await replayConsumer(tool.connection, stream, 'eoreplay', { seq: 1 }, { recreate: true })).previousAckFloor).toBe(3);
    await client.jsm.consumers.delete(stream, 'eoreplay');
    app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('r'), { id: 'd', qty: 1 }, { msgId: 'r-d' });
    await settled(4, 'replayed messages skipped, the new one handled');
    expect(handled).toEqual(['a', 'b', 'c', 'd']);
    if (app.connection.serverAtLeast(2, 14, 0)) {
      // The CLI's in-place reset, while the app runs. Its `pending` is the server's count at the
      // reset, which the running app may already have pulled from: the skips below are the proof.
      const skipped: number[] = [];
      app.lifecycle.onHandled((e) => e.outcome === 'skipped' && skipped.push(e.sequence));
      const replay = await replayConsumer(app.connection, stream, 'eoreplay', { seq: 1 });
      expect(replay.pending).toBeLessThanOrEqual(4);
      await app.publisher.publish(subject('r'), { id: 'e', qty: 1 }, { msgId: 'r-e' });
      await settled(5, 'replayed messages skipped again, the new one handled');
      expect(handled).toEqual(['a', 'b', 'c', 'd', 'e']);
      expect(skipped.sort()).toEqual([1, 2, 3, 4]);
    }
  });

  it('runs handled messages again when the durable starts over without a replay note, rather than risk losing one', async () => {
    const { stream, subject } = await setup('EOLOST');
    const handled: string[] = [];
    @Injectable()
    class Handler {
      // A short ack wait is a short lease: the leases of the first run must lapse first.
      @OnEvent(subject('s'), { durable: 'eolost', delivery: 'exactly-once', ackWaitMs: 1_000 })
      async handle(order: Order) {
        handled.push(order.id);
      }
    }
    let app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    for (const id of ['a', 'b']) await app.publisher.publish(subject('s'), { id, qty: 1 }, { msgId: `s-${id}` });
    await waitFor(async () => (await client.jsm.consumers.info(stream, 'eolost')).ack_floor.stream_seq === 2, { timeoutMs: 10_000, message: 'acked' });
    await app.close();
    // As after a broker lost its consumer state: a handled message looks like one whose holder
    // died mid-handler, and skipping that one would lose it.
    await client.jsm.consumers.delete(stream, 'eolost');
    app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    await waitFor(() => handled.length === 4, { timeoutMs: 10_000, message: 'both handled again' });
    // Each exactly once more; in any order, since a lease still live on a loaded machine sends
    // its message back for a moment while the other runs.
    expect(handled.slice(0, 2)).toEqual(['a', 'b']);
    expect(handled.slice(2).sort()).toEqual(['a', 'b']);
  });

  it('waits for a live lease held by another instance instead of running twice', async () => {
    const { stream, subject } = await setup('EOLEASE');
    const kv = await new Kvm(client.nc).create('nestjs_jetstream_idempotency', { history: 1, ttl: 24 * 3600 * 1000 });
    const key = IdempotencyStore.key(stream, 'eolease', 'busy-1');
    const calls: Array<{ instance: string; delivery: number; at: number }> = [];
    const stuck = deferred();
    const handler = (instance: string) => {
      @Injectable()
      class Handler {
        @OnEvent(subject('l'), { durable: 'eolease', delivery: 'exactly-once', ackWaitMs: 3_000 })
        async handle(_order: Order, ctx: EventContext) {
          calls.push({ instance, delivery: ctx.deliveryCount, at: Date.now() });
          if (instance === 'first') await stuck.promise;
        }
      }
      return Handler;
    };
    // Two instances, each a Nest app with its own connection, on the same durable. The first
    // stops while its call is still running: it hands the message back at once (a nak), and its
    // abandoned call keeps the lease until the lease runs out.
    const first = await apps.start({ servers: testNatsUrl(), shutdownTimeoutMs: 200 }, [handler('first')]);
    const published = await first.publisher.publish(subject('l'), { id: 'busy', qty: 1 }, { msgId: 'busy-1' });
    await waitFor(() => calls.length === 1, { timeoutMs: 10_000, message: 'the first instance running it' });
    const lease = (await kv.get(key))!.json<{ s: string; q: number; u: number }>();
    expect(lease).toMatchObject({ s: 'p', q: published.seq });
    await apps.start({ servers: testNatsUrl() }, [handler('second')]);
    await first.close();
    try {
      await waitFor(() => calls.length === 2, { timeoutMs: 15_000, message: 'the second instance running it once the lease ran out' });
      await waitFor(async () => (await client.jsm.consumers.info(stream, 'eolease')).num_ack_pending === 0, { timeoutMs: 10_000, message: 'acked' });
      // The redelivery the nak brought came while the lease was live: it was handed back, not run,
      // and the call came only once the lease had ended (one clock: both apps are in this process).
      expect(calls.map((c) => c.instance)).toEqual(['first', 'second']);
      expect(calls[1].delivery).toBeGreaterThanOrEqual(3);
      expect(calls[1].at).toBeGreaterThanOrEqual(lease.u);
    } finally {
      stuck.resolve();
    }
  });
});

describe('Nest pipeline', () => {
  it('runs users’ interceptors and guards; a denying guard dead-letters with the reason', async () => {
    const { subject, dlqStream, dlq } = await setup('PIPE');
    const seen: string[] = [];
    @Injectable()
    class Spy implements NestInterceptor {
      intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
        seen.push(`${context.getType()}:${isJetStreamContext(context)}:${(context.switchToRpc().getData() as Order).id}`);
        return next.handle().pipe(tap(() => seen.push('after')));
      }
    }
    @Injectable()
    class OnlyAllowed implements CanActivate {
      canActivate(context: ExecutionContext): boolean {
        return (context.switchToRpc().getData() as Order).id !== 'denied';
      }
    }
    const handled: string[] = [];
    @Injectable()
    class Handler {
      @UseGuards(OnlyAllowed)
      @UseInterceptors(Spy)
      @OnEvent(subject('g'), { durable: 'pipe', dlq })
      async handle(order: Order) {
        handled.push(order.id);
      }
    }
    const app = await apps.start({ servers: testNatsUrl() }, [Handler, Spy, OnlyAllowed]);
    await app.publisher.publish(subject('g'), { id: 'denied', qty: 1 });
    await app.publisher.publish(subject('g'), { id: 'ok', qty: 1 });
    await waitFor(() => handled.includes('ok'), { timeoutMs: 10_000, message: 'allowed message handled' });
    expect(seen).toEqual(['jetstream:true:ok', 'after']);
    const [letter] = await deadLetters(app, dlqStream, 1);
    expect(letter.reason).toBe('forbidden');
    expect(letter.text()).toBe('{"id":"denied","qty":1}');
  });

  it('lets users place the built-in interceptors themselves without running them twice', async () => {
    const { subject, dlqStream, dlq } = await setup('ORDERI');
    const order: string[] = [];
    @Injectable()
    class Outer implements NestInterceptor {
      intercept(_c: ExecutionContext, next: CallHandler): Observable<unknown> {
        order.push('outer');
        return next.handle();
      }
    }
    let calls = 0;
    @Injectable()
    class Handler {
      @UseInterceptors(JetStreamDeadLetterInterceptor, Outer, JetStreamRetryInterceptor)
      @OnEvent(subject('o'), { durable: 'orderi', dlq, retry: { maxAttempts: 2, initialDelayMs: 100 } })
      async handle() {
        calls++;
        throw new Error('fails');
      }
    }
    const app = await apps.start({ servers: testNatsUrl() }, [Handler, Outer, JetStreamDeadLetterInterceptor, JetStreamRetryInterceptor]);
    await app.publisher.publish(subject('o'), { id: 'x', qty: 1 });
    const [letter] = await deadLetters(app, dlqStream, 1);
    expect(letter.reason).toBe('exhausted');
    expect(calls).toBe(2);
    expect(order).toEqual(['outer', 'outer']);
  });
});

describe('pipes', () => {
  it('runs the user’s pipes on the payload only, before the class binding', async () => {
    const { subject } = await setup('PIPES');
    const metas: Array<{ type: unknown; metatype: unknown }> = [];
    @Injectable()
    class Upper implements PipeTransform {
      transform(value: { id: string; qty: number }, metadata: ArgumentMetadata) {
        metas.push({ type: metadata.type, metatype: metadata.metatype });
        return { ...value, id: value.id.toUpperCase() };
      }
    }
    const got: Array<{ order: Order; isOrder: boolean; ctx: boolean }> = [];
    @Injectable()
    class Handler {
      @UsePipes(Upper)
      @OnEvent(subject('p'))
      async handle(order: Order, ctx: EventContext) {
        got.push({ order, isOrder: order instanceof Order, ctx: ctx instanceof EventContext && ctx.subject === subject('p') });
      }
    }
    const app = await apps.start({ servers: testNatsUrl() }, [Handler, Upper]);
    await app.publisher.publish(subject('p'), { id: 'abc', qty: 2 });
    await waitFor(() => got.length === 1, { timeoutMs: 10_000, message: 'handled' });
    expect(got[0]).toMatchObject({ order: { id: 'ABC', qty: 2 }, isOrder: true, ctx: true });
    expect(metas).toEqual([{ type: 'body', metatype: Order }]);
  });

  it('works with a global ValidationPipe: the context is untouched and a rejection is dead-lettered', async () => {
    const { subject, dlqStream, dlq } = await setup('GVP');
    const got: Array<{ order: Order; ctxOk: boolean }> = [];
    @Injectable()
    class Handler {
      @OnEvent(subject('v'), { durable: 'gvp', dlq })
      async handle(order: Order, ctx: EventContext) {
        got.push({ order, ctxOk: ctx instanceof EventContext && ctx.sequence > 0 });
      }
    }
    const app = await apps.start({ servers: testNatsUrl(), validation: false }, [
      Handler,
      { provide: APP_PIPE, useValue: new ValidationPipe({ transform: true }) },
    ]);
    await app.publisher.publish(subject('v'), { id: 'bad', qty: 'x' });
    await app.publisher.publish(subject('v'), { id: 'good', qty: 1 });
    await waitFor(() => got.length === 1, { timeoutMs: 10_000, message: 'good one handled' });
    expect(got[0].order).toBeInstanceOf(Order);
    expect(got[0].ctxOk).toBe(true);
    const [letter] = await deadLetters(app, dlqStream, 1);
    expect(letter.reason).toBe('invalid-payload');
    expect(letter.error.name).toBe('BadRequestException');
  });
});

describe('long handlers', () => {
  it('keep their message with working() past the ack wait: no redelivery while running', async () => {
    const { stream, subject } = await setup('LONG');
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
    const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
    await app.publisher.publish(subject('l'), { id: 'slow', qty: 1 });
    await waitFor(() => deliveries.length === 1, { timeoutMs: 10_000, message: 'handler started' });
    // Three ack waits pass while the handler runs; the server must not hand the message out again.
    const started = Date.now();
    await waitFor(() => Date.now() - started >= 4_500, { timeoutMs: 10_000, intervalMs: 100, message: 'three ack waits' });
    const during = await client.jsm.consumers.info(stream, 'long');
    expect(during.num_redelivered).toBe(0);
    expect(deliveries).toEqual([1]);
    release();
    await waitFor(async () => (await client.jsm.consumers.info(stream, 'long')).ack_floor.stream_seq === 1, {
      timeoutMs: 10_000,
      message: 'acked after finishing',
    });
    expect(deliveries).toEqual([1]);
  });
});

describe('ordering with concurrency', () => {
  it('keeps per-key order while different keys run in parallel, even across in-place retries', async () => {
    const { subject } = await setup('ORD');
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
    const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
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
