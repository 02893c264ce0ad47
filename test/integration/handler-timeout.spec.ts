import 'reflect-metadata';
import { Injectable, UseInterceptors, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import type { Observable } from 'rxjs';
import {
  DeadLetterService,
  EventContext,
  HandlerTimeoutError,
  InvalidOptionsError,
  OnEvent,
  TerminalError,
  type HandledEvent,
} from '../../lib/index.js';
import { resolveHandlerOptions } from '../../lib/discovery/resolve-handler-options.js';
import { deferred, testNatsUrl, uniqueName, waitFor, withDeadline } from '../harness/index.js';
import { createStream, sharedServerHooks } from './kit.js';

const shared = sharedServerHooks();
const apps = shared.apps;

/** A user interceptor: makes the handler run through the full Nest pipeline with the built-ins. */
@Injectable()
class PassThrough implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle();
  }
}

describe('handler timeoutMs', () => {
  it('is off by default and must be a positive integer', () => {
    expect(resolveHandlerOptions('A.m', {}, {}).timeoutMs).toBeUndefined();
    expect(resolveHandlerOptions('A.m', { timeoutMs: 2_000 }, {}).timeoutMs).toBe(2_000);
    expect(resolveHandlerOptions('A.m', { timeoutMs: 2_000 }, { timeoutMs: 50 }).timeoutMs).toBe(50);
    for (const bad of [0, -1, 1.5, '100', Number.NaN]) {
      expect(() => resolveHandlerOptions('Billing.onCreated', {}, { timeoutMs: bad as number })).toThrow(InvalidOptionsError);
      expect(() => resolveHandlerOptions('Billing.onCreated', {}, { timeoutMs: bad as number })).toThrow(
        /@OnEvent on Billing\.onCreated: timeoutMs must be an integer >= 1/,
      );
    }
  });

  it('fails a call that runs too long, retries it, and ignores the abandoned call when it ends late', async () => {
    const stream = uniqueName('TMO');
    const dlqStream = uniqueName('TMO_DLQ');
    await createStream(shared.client.jsm, stream, [`${stream}.>`]);
    const subject = `${stream}.work`;
    const lateThrow = deferred<void>();
    // The abandoned first call runs until the test lets it go: only after the retry succeeded,
    // so the retry cannot have waited for it, however slow the machine.
    const letFirstEnd = deferred<void>();
    const calls: number[] = [];

    @Injectable()
    @UseInterceptors(PassThrough)
    class Worker {
      @OnEvent(subject, {
        durable: 'tmo',
        timeoutMs: 300,
        retry: { maxAttempts: 3, initialDelayMs: 50, jitter: false },
        dlq: { stream: dlqStream, subject: `${dlqStream}.letters` },
      })
      async handle(_payload: unknown, ctx: EventContext): Promise<void> {
        calls.push(ctx.attempt);
        if (ctx.attempt === 1) {
          // Long past the timeout, then a failure that would be dead-lettered at once if anyone
          // still listened: the abandoned call must not park a copy of a handled message.
          await letFirstEnd.promise;
          queueMicrotask(() => lateThrow.resolve());
          throw new TerminalError('late failure of an abandoned call');
        }
      }
    }
    const app = await apps.start({ servers: testNatsUrl() }, [Worker]);
    const events: HandledEvent[] = [];
    app.lifecycle.onHandled((e) => events.push(e));
    await app.publisher.publish(subject, { n: 1 });

    await waitFor(() => events.some((e) => e.outcome === 'succeeded'), { timeoutMs: 10_000, message: 'the retry succeeding' });
    const firstFailure = events.find((e) => e.outcome === 'failed')!;
    expect(firstFailure.attempt).toBe(1);
    expect(firstFailure.error).toBeInstanceOf(HandlerTimeoutError);
    expect((firstFailure.error as HandlerTimeoutError).message).toMatch(/Worker\.handle did not settle within 300 ms/);
    // The retry ran and succeeded while the first call was still running.
    expect(calls).toEqual([1, 2]);
    letFirstEnd.resolve();
    await waitFor(async () => (await shared.client.jsm.consumers.info(stream, 'tmo')).num_ack_pending === 0, {
      timeoutMs: 5_000,
      message: 'message acked',
    });

    await withDeadline(lateThrow.promise, 5_000, 'the abandoned call to fail');
    // Anything the abandoned pipeline published to the dead-letter subject went out on this
    // connection before the sentinel: finding only the sentinel proves nothing was parked.
    await new Promise((resolve) => setImmediate(resolve));
    await app.publisher.publish(`${dlqStream}.letters`, { sentinel: true });
    const letters = await app.inner.app.get(DeadLetterService).list({ stream: dlqStream });
    expect(letters.map((l) => l.text())).toEqual(['{"sentinel":true}']);
    expect(calls).toEqual([1, 2]);
    expect(events.filter((e) => e.outcome === 'succeeded')).toHaveLength(1);
    expect(app.logger.find(/Worker\.handle failed .*HandlerTimeoutError: Worker\.handle did not settle within 300 ms/, 'warn')).toHaveLength(1);
    await shared.client.jsm.streams.delete(dlqStream);
  });

  it('dead-letters a call that never settles once the attempts are used up', async () => {
    const stream = uniqueName('TMO2');
    const dlqStream = uniqueName('TMO2_DLQ');
    await createStream(shared.client.jsm, stream, [`${stream}.>`]);
    const subject = `${stream}.work`;
    let calls = 0;
    let done = false;
    @Injectable()
    class Stuck {
      @OnEvent(subject, {
        durable: 'stuck',
        timeoutMs: 200,
        retry: { maxAttempts: 2, initialDelayMs: 50, jitter: false },
        dlq: { stream: dlqStream, subject: `${dlqStream}.letters` },
      })
      handle(payload: { n: number }): Promise<void> {
        if (payload.n === 2) {
          done = true;
          return Promise.resolve();
        }
        calls++;
        return new Promise<void>(() => undefined);
      }
    }
    const app = await apps.start({ servers: testNatsUrl() }, [Stuck]);
    await app.publisher.publish(subject, { n: 1 });
    const service = app.inner.app.get(DeadLetterService);
    let letters: Awaited<ReturnType<DeadLetterService['list']>> = [];
    await waitFor(async () => (letters = await service.list({ stream: dlqStream })).length === 1, {
      timeoutMs: 10_000,
      intervalMs: 200,
      message: 'the stuck message dead-lettered',
    });
    expect(letters[0].reason).toBe('exhausted');
    expect(letters[0].attempts).toBe(2);
    expect(letters[0].error).toEqual({ name: 'HandlerTimeoutError', message: 'Stuck.handle did not settle within 200 ms (timeoutMs); the call was abandoned and counts as a failed attempt' });
    expect(calls).toBe(2);
    // The stuck calls hold no concurrency slot (concurrency is 1): the next message is handled.
    await app.publisher.publish(subject, { n: 2 });
    await waitFor(() => done, { timeoutMs: 5_000, message: 'the next message handled' });
    await waitFor(async () => (await shared.client.jsm.consumers.info(stream, 'stuck')).num_ack_pending === 0, {
      timeoutMs: 5_000,
      message: 'both settled',
    });
    await shared.client.jsm.streams.delete(dlqStream);
  });
});
