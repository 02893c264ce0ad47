import 'reflect-metadata';
import { Controller, Get, Inject, Injectable, Module, type INestApplication, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule, Ctx, EventPattern, MessagePattern, Payload, RpcException, type ClientProxy } from '@nestjs/microservices';
import { jetstream } from '@nats-io/jetstream';
import { jest } from '@jest/globals';
import { lastValueFrom } from 'rxjs';
import {
  DeadLetterHeaders,
  EventContext,
  InvalidSubjectError,
  JetStreamConnection,
  JetStreamModule,
  JetStreamPublisher,
  NoStreamForSubjectError,
  OnEvent,
  TerminalError,
} from '../../lib/index.js';
import {
  JetStreamClient,
  JetStreamContext,
  JetStreamRecordBuilder,
  JetStreamServer,
  RequestTimeoutError,
} from '../../lib/transport/index.js';
import { deferred, testNatsUrl, uniqueName } from '../harness/index.js';
import { CapturingLogger } from '../support/test-app.js';
import { TransportKit } from './transport-kit.js';

const kit = TransportKit.hooks();


async function microservice(module: unknown, options: ConstructorParameters<typeof JetStreamServer>[0]): Promise<INestMicroservice> {
  return (await kit.microservice(module, options)).app;
}

describe('JetStreamServer: @EventPattern on the shared engine', () => {
  it('retries a failing handler per its extras, then dead-letters it with the Dlq headers', async () => {
    const { stream, subject } = await kit.freshStream('MSR');
    const dlqStream = uniqueName('MSRDL');
    const attempts: number[] = [];
    @Controller()
    class Events {
      @EventPattern<string>(subject('fail'), {
        durable: 'ms-retry',
        retry: { maxAttempts: 3, initialDelayMs: 100, jitter: false },
        dlq: { stream: dlqStream, subject: `${dlqStream}.letters` },
      })
      handle(@Payload() _data: unknown, @Ctx() ctx: JetStreamContext) {
        attempts.push(ctx.attempt);
        throw new Error('downstream down');
      }

      @EventPattern<string>(subject('terminal'), { durable: 'ms-term', dlq: { stream: dlqStream, subject: `${dlqStream}.letters` } })
      terminal() {
        throw new RpcException(new TerminalError('never valid'));
      }
    }
    @Module({ controllers: [Events] })
    class AppModule {}
    await microservice(AppModule, { servers: testNatsUrl() });
    await jetstream(kit.nc).publish(subject('fail'), JSON.stringify({ id: 1 }));
    await jetstream(kit.nc).publish(subject('terminal'), JSON.stringify({ id: 2 }));
    const letters = await kit.readDeadLetters(dlqStream, 2);
    expect(attempts).toEqual([1, 2, 3]);
    const byReason = Object.fromEntries(letters.map((l) => [l.headers[DeadLetterHeaders.Reason], l]));
    expect(byReason.exhausted.data).toBe('{"id":1}');
    expect(byReason.exhausted.headers[DeadLetterHeaders.OriginalStream]).toBe(stream);
    expect(byReason.exhausted.headers[DeadLetterHeaders.Attempts]).toBe('3');
    expect(byReason.terminal.headers[DeadLetterHeaders.ErrorName]).toBe('TerminalError');
    expect(byReason.terminal.headers[DeadLetterHeaders.Attempts]).toBe('1');
  });

  it('serves a hybrid HTTP + microservice app: an HTTP call emits, an @EventPattern handles', async () => {
    const { subject } = await kit.freshStream('HYB');
    const got = deferred<{ data: unknown; subject: string; msgId?: string }>();
    @Controller()
    class Api {
      constructor(@Inject('BUS') private readonly bus: ClientProxy) {}
      @Get('/order')
      async order() {
        return lastValueFrom(this.bus.emit(subject('created'), new JetStreamRecordBuilder({ id: 'o-1' }).setMsgId('o-1').build()));
      }
      @EventPattern<string>(subject('created'), { durable: 'hyb' })
      created(@Payload() data: unknown, @Ctx() ctx: JetStreamContext) {
        got.resolve({ data, subject: ctx.getSubject(), msgId: ctx.msgId });
      }
    }
    @Module({ imports: [ClientsModule.register([{ name: 'BUS', customClass: JetStreamClient, options: { servers: testNatsUrl() } }])], controllers: [Api] })
    class AppModule {}
    const app: INestApplication = await NestFactory.create(AppModule, { logger: new CapturingLogger() });
    kit.onClose(() => app.close());
    app.connectMicroservice({ strategy: new JetStreamServer({ servers: testNatsUrl() }) });
    await app.startAllMicroservices();
    await app.listen(0, '127.0.0.1');
    const { port } = app.getHttpServer().address() as { port: number };
    const res = await fetch(`http://127.0.0.1:${port}/order`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ duplicate: false });
    await expect(got.promise).resolves.toEqual({ data: { id: 'o-1' }, subject: subject('created'), msgId: 'o-1' });
  });
});

describe('request-reply', () => {
  async function server(subjectPrefix: string, queue?: string, served?: string[]) {
    @Controller()
    class Math {
      @MessagePattern(`${subjectPrefix}.sum`)
      sum(@Payload() numbers: number[]) {
        served?.push('x');
        return numbers.reduce((a, b) => a + b, 0);
      }
      @MessagePattern(`${subjectPrefix}.bad`)
      bad() {
        throw new RpcException({ code: 'E_BAD', message: 'bad input' });
      }
      @MessagePattern(`${subjectPrefix}.slow`)
      async slow() {
        await new Promise((r) => setTimeout(r, 2_000));
        return 'late';
      }
    }
    @Module({ controllers: [Math] })
    class AppModule {}
    return microservice(AppModule, { servers: testNatsUrl(), queue });
  }

  it('answers, returns RpcException payloads as errors, and times out', async () => {
    const prefix = uniqueName('rr');
    await server(prefix);
    const client = new JetStreamClient({ servers: testNatsUrl(), requestTimeoutMs: 300 });
    kit.onClose(() => client.close());
    await expect(lastValueFrom(client.send(`${prefix}.sum`, [1, 2, 3]))).resolves.toBe(6);
    await expect(lastValueFrom(client.send(`${prefix}.bad`, {}))).rejects.toEqual({ code: 'E_BAD', message: 'bad input' });
    await expect(lastValueFrom(client.send(`${prefix}.slow`, {}))).rejects.toBeInstanceOf(RequestTimeoutError);
  });

  it('shares requests between instances of one queue group, each answered once', async () => {
    const prefix = uniqueName('rq');
    const a: string[] = [];
    const b: string[] = [];
    await server(prefix, 'workers', a);
    await server(prefix, 'workers', b);
    const client = new JetStreamClient({ servers: testNatsUrl() });
    kit.onClose(() => client.close());
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => lastValueFrom(client.send(`${prefix}.sum`, [i, 1]))));
    expect(results).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(a.length + b.length).toBe(40);
    expect(a.length).toBeGreaterThan(0);
    expect(b.length).toBeGreaterThan(0);
  });
});

describe('JetStreamClient', () => {
  it('opens one connection for 20 concurrent first emits', async () => {
    const { subject } = await kit.freshStream('ONE');
    const open = jest.spyOn(JetStreamConnection, 'open');
    const client = new JetStreamClient({ servers: testNatsUrl() });
    kit.onClose(async () => {
      open.mockRestore();
      await client.close();
    });
    const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => lastValueFrom(client.emit(subject('e'), { i }))));
    expect(open).toHaveBeenCalledTimes(1);
    expect(new Set(acks.map((a: { seq: number }) => a.seq)).size).toBe(20);
  });

  it('reports typed errors for a subject no stream captures and for an invalid subject', async () => {
    const client = new JetStreamClient({ servers: testNatsUrl(), publishRetries: 0 });
    kit.onClose(() => client.close());
    await expect(lastValueFrom(client.emit(`${uniqueName('nostream')}.x`, {}))).rejects.toBeInstanceOf(NoStreamForSubjectError);
    await expect(lastValueFrom(client.emit('bad subject', {}))).rejects.toBeInstanceOf(InvalidSubjectError);
  });
});

describe('interop with the module', () => {
  it('JetStreamPublisher → @EventPattern, and JetStreamClient.emit → @OnEvent', async () => {
    const { stream, subject } = await kit.freshStream('INTEROP');
    const onEvent = deferred<{ payload: unknown; msgId?: string; tenant?: string }>();
    @Injectable()
    class Listener {
      @OnEvent(subject('to-module'), { durable: 'interop-module' })
      handle(payload: unknown, ctx: EventContext) {
        onEvent.resolve({ payload, msgId: ctx.msgId, tenant: ctx.header('x-tenant') });
      }
    }
    @Module({ imports: [JetStreamModule.forRoot({ servers: testNatsUrl() })], providers: [Listener] })
    class ModuleApp {}
    const moduleApp = await NestFactory.createApplicationContext(ModuleApp, { logger: new CapturingLogger() });
    kit.onClose(() => moduleApp.close());

    const onPattern = deferred<{ data: unknown; stream: string; sequence: number; msgId?: string; headers: Readonly<Record<string, string[]>> }>();
    @Controller()
    class Events {
      @EventPattern<string>(subject('to-server'), { durable: 'interop-server' })
      handle(@Payload() data: unknown, @Ctx() ctx: JetStreamContext) {
        onPattern.resolve({ data, stream: ctx.stream, sequence: ctx.sequence, msgId: ctx.msgId, headers: ctx.headers });
      }
    }
    @Module({ controllers: [Events] })
    class ServerApp {}
    await microservice(ServerApp, { servers: testNatsUrl() });

    const ack = await moduleApp.get(JetStreamPublisher).publish(subject('to-server'), { n: 1 }, { msgId: 'p-1', headers: { 'x-a': 'b' } });
    const seen = await onPattern.promise;
    expect(seen).toMatchObject({ data: { n: 1 }, stream, sequence: ack.seq, msgId: 'p-1' });
    expect(seen.headers['x-a']).toEqual(['b']);

    const client = new JetStreamClient({ servers: testNatsUrl() });
    kit.onClose(() => client.close());
    const record = new JetStreamRecordBuilder({ n: 2 }).setMsgId('c-1').setHeaders({ 'x-tenant': 'acme' }).build();
    const first = await lastValueFrom(client.emit(subject('to-module'), record));
    const again = await lastValueFrom(client.emit(subject('to-module'), record));
    expect(again).toEqual({ ...first, duplicate: true });
    await expect(onEvent.promise).resolves.toEqual({ payload: { n: 2 }, msgId: 'c-1', tenant: 'acme' });
  });
});
