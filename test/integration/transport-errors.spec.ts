import 'reflect-metadata';
import { Catch, Controller, UseFilters, UseGuards, ValidationPipe, type ArgumentsHost, type CanActivate, type ExceptionFilter } from '@nestjs/common';
import { IsInt, IsString, Min } from 'class-validator';
import { BaseRpcExceptionFilter, Ctx, EventPattern, MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { jetstream } from '@nats-io/jetstream';
import { Module } from '@nestjs/common';
import { Registry } from 'prom-client';
import { lastValueFrom, throwError, type Observable } from 'rxjs';
import { DeadLetterHeaders as H, TerminalError } from '../../lib/index.js';
import { JetStreamClient, type JetStreamContext } from '../../lib/transport/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { TransportKit } from './transport-kit.js';

/**
 * Issue 13 item 2: an @EventPattern handler's failure reaches the engine as the handler threw
 * it, not as the `{ status, message: 'Internal server error' }` of Nest's RPC exception layer.
 */
const kit = TransportKit.hooks();

class CardDeclinedError extends Error {
  override name = 'CardDeclinedError';
}

const retry = { maxAttempts: 3, initialDelayMs: 50, jitter: false } as const;

async function errorCount(registry: Registry, subject: string, errorType: string): Promise<number | undefined> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'nats_consume_errors_total');
  const values = (metric?.values ?? []) as Array<{ labels: Record<string, unknown>; value: number }>;
  return values.find((v) => v.labels.subject === subject && v.labels.error_type === errorType)?.value;
}

/** Letters keyed by the subject they were dead-lettered from. */
async function lettersBySubject(dlqStream: string, count: number): Promise<Record<string, Record<string, string>>> {
  const letters = await kit.readDeadLetters(dlqStream, count);
  return Object.fromEntries(letters.map((l) => [l.headers[H.OriginalSubject], l.headers]));
}

describe('@EventPattern failures keep the error the handler threw', () => {
  it('without a filter: retry decision, dead-letter headers, error_type label and log line use the real error', async () => {
    const { subject } = await kit.freshStream('TEF');
    const dlqStream = uniqueName('TEFDL');
    const dlq = { stream: dlqStream, subject: `${dlqStream}.letters` };
    const attempts: Record<string, number[]> = { plain: [], terminal: [], declined: [] };
    @Controller()
    class Payments {
      @EventPattern<string>(subject('plain'), { durable: 'tef-plain', retry, dlq })
      plain(_data: unknown, @Ctx() ctx: JetStreamContext) {
        attempts.plain.push(ctx.attempt);
        throw new Error('card declined');
      }

      @EventPattern<string>(subject('terminal'), { durable: 'tef-terminal', retry, dlq })
      terminal(_data: unknown, @Ctx() ctx: JetStreamContext) {
        attempts.terminal.push(ctx.attempt);
        throw new TerminalError('order cancelled');
      }

      @EventPattern<string>(subject('declined'), {
        durable: 'tef-declined',
        retry,
        dlq,
        retryable: (error: unknown) => !(error instanceof CardDeclinedError),
      })
      declined(_data: unknown, @Ctx() ctx: JetStreamContext) {
        attempts.declined.push(ctx.attempt);
        throw new CardDeclinedError('insufficient funds');
      }
    }
    @Module({ controllers: [Payments] })
    class AppModule {}
    const registry = new Registry();
    const { logger } = await kit.microservice(AppModule, { servers: testNatsUrl(), metrics: { registry } });
    for (const s of ['plain', 'terminal', 'declined']) await jetstream(kit.nc).publish(subject(s), JSON.stringify({ s }));

    const letters = await lettersBySubject(dlqStream, 3);
    expect(attempts).toEqual({ plain: [1, 2, 3], terminal: [1], declined: [1] });
    expect(letters[subject('plain')]).toMatchObject({ [H.ErrorName]: 'Error', [H.ErrorMessage]: 'card declined', [H.Reason]: 'exhausted', [H.Attempts]: '3' });
    expect(letters[subject('terminal')]).toMatchObject({ [H.ErrorName]: 'TerminalError', [H.ErrorMessage]: 'order cancelled', [H.Reason]: 'terminal', [H.Attempts]: '1' });
    expect(letters[subject('declined')]).toMatchObject({ [H.ErrorName]: 'CardDeclinedError', [H.ErrorMessage]: 'insufficient funds', [H.Reason]: 'terminal', [H.Attempts]: '1' });

    expect(await errorCount(registry, subject('plain'), 'Error')).toBe(3);
    expect(await errorCount(registry, subject('terminal'), 'TerminalError')).toBe(1);
    expect(await errorCount(registry, subject('declined'), 'CardDeclinedError')).toBe(1);

    expect(logger.find('Error: card declined', 'warn')).toHaveLength(2);
    expect(logger.find(/dead-lettered .*plain .*reason exhausted\): Error: card declined/, 'error')).toHaveLength(1);
    expect(logger.find(/dead-lettered .*terminal .*reason terminal\): TerminalError: order cancelled/, 'error')).toHaveLength(1);
    expect(logger.find('Internal server error')).toEqual([]);
  });

  it("with the user's exception filters (a method filter that rethrows, a global one that returns an error observable)", async () => {
    const { subject } = await kit.freshStream('TEU');
    const dlqStream = uniqueName('TEUDL');
    const dlq = { stream: dlqStream, subject: `${dlqStream}.letters` };
    const attempts: Record<string, number[]> = { rethrown: [], base: [], mapped: [] };
    const filtered: Array<{ filter: string; error: unknown }> = [];

    @Catch()
    class RethrowFilter implements ExceptionFilter {
      catch(exception: unknown): never {
        filtered.push({ filter: 'rethrow', error: exception });
        throw exception;
      }
    }
    // The shape Nest's documentation suggests: log, then hand over to the base filter, whose
    // observable errors with `{ status: 'error', message: 'Internal server error' }`.
    @Catch()
    class LoggingFilter extends BaseRpcExceptionFilter {
      override catch(exception: unknown, host: ArgumentsHost): Observable<unknown> {
        filtered.push({ filter: 'base', error: exception });
        return super.catch(exception, host);
      }
    }
    @Catch(CardDeclinedError)
    class MappingFilter implements ExceptionFilter {
      catch(exception: unknown): Observable<unknown> {
        filtered.push({ filter: 'mapping', error: exception });
        return throwError(() => ({ status: 'error', code: 'DECLINED' }));
      }
    }

    @Controller()
    class Payments {
      @UseFilters(RethrowFilter)
      @EventPattern<string>(subject('rethrown'), { durable: 'teu-rethrown', retry, dlq })
      rethrown(_data: unknown, @Ctx() ctx: JetStreamContext) {
        attempts.rethrown.push(ctx.attempt);
        throw new TerminalError('order cancelled');
      }

      @EventPattern<string>(subject('base'), { durable: 'teu-base', retry: { ...retry, maxAttempts: 2 }, dlq })
      base(_data: unknown, @Ctx() ctx: JetStreamContext) {
        attempts.base.push(ctx.attempt);
        throw new Error('card declined');
      }

      @UseFilters(MappingFilter)
      @EventPattern<string>(subject('mapped'), {
        durable: 'teu-mapped',
        retry,
        dlq,
        retryable: (error: unknown) => !(error instanceof CardDeclinedError),
      })
      mapped(_data: unknown, @Ctx() ctx: JetStreamContext) {
        attempts.mapped.push(ctx.attempt);
        throw new CardDeclinedError('insufficient funds');
      }
    }
    @Module({ controllers: [Payments] })
    class AppModule {}
    const registry = new Registry();
    const { logger } = await kit.microservice(AppModule, { servers: testNatsUrl(), metrics: { registry } }, (app) =>
      app.useGlobalFilters(new LoggingFilter()),
    );
    for (const s of ['rethrown', 'base', 'mapped']) await jetstream(kit.nc).publish(subject(s), JSON.stringify({ s }));

    const letters = await lettersBySubject(dlqStream, 3);
    expect(attempts).toEqual({ rethrown: [1], base: [1, 2], mapped: [1] });
    // Each filter ran on the handler's own error.
    expect(filtered.map((f) => [f.filter, (f.error as Error).message])).toEqual(
      expect.arrayContaining([
        ['rethrow', 'order cancelled'],
        ['base', 'card declined'],
        ['base', 'card declined'],
        ['mapping', 'insufficient funds'],
      ]),
    );
    expect(filtered).toHaveLength(4);
    expect(letters[subject('rethrown')]).toMatchObject({ [H.ErrorName]: 'TerminalError', [H.Reason]: 'terminal', [H.Attempts]: '1' });
    expect(letters[subject('base')]).toMatchObject({ [H.ErrorName]: 'Error', [H.ErrorMessage]: 'card declined', [H.Reason]: 'exhausted', [H.Attempts]: '2' });
    expect(letters[subject('mapped')]).toMatchObject({ [H.ErrorName]: 'CardDeclinedError', [H.ErrorMessage]: 'insufficient funds', [H.Reason]: 'terminal' });

    expect(await errorCount(registry, subject('base'), 'Error')).toBe(2);
    expect(await errorCount(registry, subject('mapped'), 'CardDeclinedError')).toBe(1);
    expect(logger.find(/dead-lettered .*base .*: Error: card declined/, 'error')).toHaveLength(1);
    expect(logger.find(/dead-lettered .*mapped .*: CardDeclinedError: insufficient funds/, 'error')).toHaveLength(1);
  });

  it('a filter that raises another Error settles that one; a filter that returns a value acks; requests stay masked', async () => {
    const { stream, subject } = await kit.freshStream('TEX');
    const dlqStream = uniqueName('TEXDL');
    const attempts: Record<string, number[]> = { translated: [], swallowed: [] };
    @Catch()
    class TranslateFilter implements ExceptionFilter {
      catch(exception: unknown): Observable<unknown> {
        return throwError(() => new TerminalError(`translated: ${(exception as Error).message}`));
      }
    }
    @Catch()
    class SwallowFilter implements ExceptionFilter {
      catch(): string {
        return 'handled';
      }
    }
    @Controller()
    class Payments {
      @UseFilters(TranslateFilter)
      @EventPattern<string>(subject('translated'), { durable: 'tex-translated', retry, dlq: { stream: dlqStream, subject: `${dlqStream}.letters` } })
      translated(_data: unknown, @Ctx() ctx: JetStreamContext) {
        attempts.translated.push(ctx.attempt);
        throw new Error('card declined');
      }

      @UseFilters(SwallowFilter)
      @EventPattern<string>(subject('swallowed'), { durable: 'tex-swallowed', retry })
      swallowed(_data: unknown, @Ctx() ctx: JetStreamContext) {
        attempts.swallowed.push(ctx.attempt);
        throw new Error('card declined');
      }

      @MessagePattern(`${stream.toLowerCase()}.quote`)
      quote() {
        throw new Error('database password rejected');
      }
    }
    @Module({ controllers: [Payments] })
    class AppModule {}
    await kit.microservice(AppModule, { servers: testNatsUrl() });
    await jetstream(kit.nc).publish(subject('translated'), JSON.stringify({}));
    await jetstream(kit.nc).publish(subject('swallowed'), JSON.stringify({}));

    const letters = await lettersBySubject(dlqStream, 1);
    expect(letters[subject('translated')]).toMatchObject({ [H.ErrorName]: 'TerminalError', [H.ErrorMessage]: 'translated: card declined', [H.Reason]: 'terminal' });
    expect(attempts.translated).toEqual([1]);
    // Acked: the durable has nothing pending or waiting for redelivery.
    await waitFor(async () => {
      const info = await kit.jsm.consumers.info(stream, 'tex-swallowed');
      return info.num_ack_pending === 0 && info.num_pending === 0 && info.delivered.stream_seq >= 2;
    }, { timeoutMs: 10_000, message: 'the swallowed event to be acked' });
    expect(attempts.swallowed).toEqual([1]);

    const client = new JetStreamClient({ servers: testNatsUrl() });
    kit.onClose(() => client.close());
    await expect(lastValueFrom(client.send(`${stream.toLowerCase()}.quote`, {}))).rejects.toEqual({ status: 'error', message: 'Internal server error' });
  });

  it('a guard that returns false dead-letters at once as forbidden, as for @OnEvent', async () => {
    const { subject } = await kit.freshStream('TEG');
    const dlqStream = uniqueName('TEGDL');
    let calls = 0;
    const denyAll: CanActivate = { canActivate: () => false };
    @Controller()
    class Payments {
      @UseGuards(denyAll)
      @EventPattern<string>(subject('guarded'), { durable: 'teg', retry, dlq: { stream: dlqStream, subject: `${dlqStream}.letters` } })
      guarded() {
        calls++;
      }
    }
    @Module({ controllers: [Payments] })
    class AppModule {}
    await kit.microservice(AppModule, { servers: testNatsUrl() });
    await jetstream(kit.nc).publish(subject('guarded'), JSON.stringify({}));
    const letters = await lettersBySubject(dlqStream, 1);
    expect(calls).toBe(0);
    expect(letters[subject('guarded')]).toMatchObject({ [H.ErrorName]: 'ForbiddenException', [H.Reason]: 'forbidden', [H.Attempts]: '1' });
  });

  it("a global ValidationPipe's rejection dead-letters at once as invalid-payload, naming each field", async () => {
    const { subject } = await kit.freshStream('TEV');
    const dlqStream = uniqueName('TEVDL');
    class Charge {
      @IsString() orderId!: string;
      @IsInt() @Min(1) cents!: number;
    }
    let calls = 0;
    @Controller()
    class Payments {
      @EventPattern<string>(subject('charge'), { durable: 'tev', retry, dlq: { stream: dlqStream, subject: `${dlqStream}.letters` } })
      charge(@Payload() _charge: Charge) {
        calls++;
      }
    }
    @Module({ controllers: [Payments] })
    class AppModule {}
    await kit.microservice(AppModule, { servers: testNatsUrl() }, (app) => app.useGlobalPipes(new ValidationPipe()));
    await jetstream(kit.nc).publish(subject('charge'), JSON.stringify({ orderId: 7, cents: 0 }));
    const letters = await lettersBySubject(dlqStream, 1);
    expect(calls).toBe(0);
    const letter = letters[subject('charge')];
    expect(letter).toMatchObject({ [H.ErrorName]: 'BadRequestException', [H.Reason]: 'invalid-payload', [H.Attempts]: '1' });
    expect(letter[H.ErrorMessage]).toContain('orderId must be a string');
    expect(letter[H.ErrorMessage]).toContain('cents must not be less than 1');
  });

  it('an RpcException keeps what Nest makes of it: its Error payload, or an RpcError with its message', async () => {
    const { subject } = await kit.freshStream('TER');
    const dlqStream = uniqueName('TERDL');
    const dlq = { stream: dlqStream, subject: `${dlqStream}.letters` };
    const attempts: Record<string, number[]> = { text: [], object: [], wrapped: [] };
    @Controller()
    class Payments {
      @EventPattern<string>(subject('text'), { durable: 'ter-text', retry: { ...retry, maxAttempts: 2 }, dlq })
      text(_data: unknown, @Ctx() ctx: JetStreamContext) {
        attempts.text.push(ctx.attempt);
        throw new RpcException('card declined');
      }

      @EventPattern<string>(subject('object'), { durable: 'ter-object', retry: { ...retry, maxAttempts: 2 }, dlq })
      object(_data: unknown, @Ctx() ctx: JetStreamContext) {
        attempts.object.push(ctx.attempt);
        throw new RpcException({ code: 'E_CARD', message: 'card expired' });
      }

      @EventPattern<string>(subject('wrapped'), { durable: 'ter-wrapped', retry, dlq })
      wrapped(_data: unknown, @Ctx() ctx: JetStreamContext) {
        attempts.wrapped.push(ctx.attempt);
        throw new RpcException(new TerminalError('order cancelled'));
      }
    }
    @Module({ controllers: [Payments] })
    class AppModule {}
    await kit.microservice(AppModule, { servers: testNatsUrl() });
    for (const s of ['text', 'object', 'wrapped']) await jetstream(kit.nc).publish(subject(s), JSON.stringify({ s }));

    const letters = await lettersBySubject(dlqStream, 3);
    expect(attempts).toEqual({ text: [1, 2], object: [1, 2], wrapped: [1] });
    expect(letters[subject('text')]).toMatchObject({ [H.ErrorName]: 'RpcError', [H.ErrorMessage]: 'card declined', [H.Reason]: 'exhausted' });
    expect(letters[subject('object')]).toMatchObject({ [H.ErrorName]: 'RpcError', [H.ErrorMessage]: 'card expired', [H.Reason]: 'exhausted' });
    expect(letters[subject('wrapped')]).toMatchObject({ [H.ErrorName]: 'TerminalError', [H.ErrorMessage]: 'order cancelled', [H.Reason]: 'terminal' });
  });
});
