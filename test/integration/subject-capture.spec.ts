import 'reflect-metadata';
import { Controller, Injectable } from '@nestjs/common';
import { EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { DiscardPolicy } from '@nats-io/jetstream';
import { Module } from '@nestjs/common';
import { lastValueFrom } from 'rxjs';
import { HandlerConfigurationError, JetStreamModule, JetStreamModuleError, OnEvent } from '../../lib/index.js';
import { JetStreamClient, RequestPatternCapturedError, RequestStoredByStreamError, type JetStreamServerOptions } from '../../lib/transport/index.js';
import { testNatsUrl, uniqueName } from '../harness/index.js';
import { startApp } from '../support/test-app.js';
import { TransportKit } from './transport-kit.js';

/**
 * Issue 13 item 3: subjects that a stream captures when it should not (a request subject), or
 * that no stream captures when one must (an event handler's subject), fail clearly and early.
 */
const kit = TransportKit.hooks();

async function listenError(module: unknown, options: JetStreamServerOptions): Promise<Error> {
  try {
    await kit.microservice(module, options);
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the microservice to fail at startup, but it listened');
}

function lookupController(pattern: string): unknown {
  @Controller()
  class Orders {
    @MessagePattern(pattern)
    lookup(@Payload() id: string) {
      return { id };
    }
  }
  @Module({ controllers: [Orders] })
  class AppModule {}
  return AppModule;
}

describe('a @MessagePattern subject that a stream captures', () => {
  it('fails the server at startup when a declared stream captures it, before the stream is created', async () => {
    const name = uniqueName('RQD');
    const prefix = name.toLowerCase();
    const err = await listenError(lookupController(`${prefix}.lookup`), {
      servers: testNatsUrl(),
      streams: [{ name, subjects: [`${prefix}.>`] }],
    });
    expect(err).toBeInstanceOf(RequestPatternCapturedError);
    expect(err).toBeInstanceOf(JetStreamModuleError);
    expect(err).toMatchObject({ pattern: `${prefix}.lookup`, stream: name, streamSubject: `${prefix}.>` });
    expect(err.message).toContain(`@MessagePattern("${prefix}.lookup")`);
    expect(err.message).toContain(`stream "${name}"`);
    expect(err.message).toContain(`"${prefix}.>"`);
    await expect(kit.jsm.streams.info(name)).rejects.toThrow(/stream not found/i);
  });

  it('fails the server at startup when a stream that already exists on the server captures it', async () => {
    const name = uniqueName('RQE');
    const prefix = name.toLowerCase();
    await kit.createStream({ name, subjects: [`${prefix}.*`] });
    const err = await listenError(lookupController(`${prefix}.lookup`), { servers: testNatsUrl() });
    expect(err).toBeInstanceOf(RequestPatternCapturedError);
    expect(err).toMatchObject({ pattern: `${prefix}.lookup`, stream: name, streamSubject: `${prefix}.*` });
    expect(err.message).toContain(`stream "${name}"`);
  });

  it('a wildcard pattern that a stream overlaps fails too; a pattern beside the stream answers', async () => {
    const name = uniqueName('RQW');
    const prefix = name.toLowerCase();
    await kit.createStream({ name, subjects: [`${prefix}.events.>`] });
    const err = await listenError(lookupController(`${prefix}.*.lookup`), { servers: testNatsUrl() });
    expect(err).toMatchObject({ pattern: `${prefix}.*.lookup`, stream: name, streamSubject: `${prefix}.events.>` });

    await kit.microservice(lookupController(`${prefix}.rpc.lookup`), { servers: testNatsUrl() });
    const client = new JetStreamClient({ servers: testNatsUrl() });
    kit.onClose(() => client.close());
    await expect(lastValueFrom(client.send(`${prefix}.rpc.lookup`, 'o-1'))).resolves.toEqual({ id: 'o-1' });
  });

  it('JetStreamClient.send() rejects with the stream\'s name when a publish ack answers the request', async () => {
    // A stream the app did not provision: created here, straight on the server.
    const name = uniqueName('RQC');
    const prefix = name.toLowerCase();
    await kit.createStream({ name, subjects: [`${prefix}.>`] });
    const client = new JetStreamClient({ servers: testNatsUrl() });
    kit.onClose(() => client.close());
    const err = await lastValueFrom(client.send(`${prefix}.lookup`, 'o-1')).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(RequestStoredByStreamError);
    expect(err).toBeInstanceOf(JetStreamModuleError);
    expect(err).toMatchObject({ subject: `${prefix}.lookup`, stream: name, seq: 1 });
    expect((err as Error).message).toContain(`stream "${name}"`);
    // Loses nothing silently: the error says where the request now sits.
    expect((await kit.jsm.streams.info(name)).state.messages).toBe(1);
  });

  it('JetStreamClient.send() names the stream when the stream refuses the request too', async () => {
    const name = uniqueName('RQF');
    const prefix = name.toLowerCase();
    await kit.createStream({ name, subjects: [`${prefix}.>`], max_msgs: 1, discard: DiscardPolicy.New });
    const client = new JetStreamClient({ servers: testNatsUrl() });
    kit.onClose(() => client.close());
    await expect(lastValueFrom(client.send(`${prefix}.lookup`, 'o-1'))).rejects.toMatchObject({ stream: name, seq: 1 });
    const err = await lastValueFrom(client.send(`${prefix}.lookup`, 'o-2')).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(RequestStoredByStreamError);
    expect(err).toMatchObject({ subject: `${prefix}.lookup`, stream: name, seq: undefined });
    expect((err as Error).message).toMatch(/refused the request \(maximum messages/);
  });
});

describe('an event handler subject that no stream captures', () => {
  it('@OnEvent: the startup error names the handler, the subject and the streams considered', async () => {
    const name = uniqueName('EVN');
    const prefix = name.toLowerCase();
    @Injectable()
    class Billing {
      @OnEvent(`${prefix}.invoices.created`)
      invoiced(): void {}
    }
    const err = await startApp({
      imports: [JetStreamModule.forRoot({ servers: testNatsUrl(), streams: [{ name, subjects: [`${prefix}.orders.>`] }] })],
      providers: [Billing],
    }).then(
      async (app) => {
        await app.close();
        throw new Error('expected the application startup to fail, but it started');
      },
      (e: unknown) => e as Error,
    );
    kit.deleteStreamAfter(name);
    expect(err).toBeInstanceOf(HandlerConfigurationError);
    expect(err).toMatchObject({ handlerId: 'Billing.invoiced', subject: `${prefix}.invoices.created` });
    expect(err.message).toContain('Billing.invoiced');
    expect(err.message).toContain(`"${prefix}.invoices.created"`);
    expect(err.message).toContain(`"${name}" (${prefix}.orders.>)`);
  });

  it('@EventPattern: the same error, naming the pattern handler and the streams considered', async () => {
    const name = uniqueName('EVP');
    const prefix = name.toLowerCase();
    @Controller()
    class Billing {
      @EventPattern(`${prefix}.invoices.created`)
      invoiced(_data: unknown): void {}
    }
    @Module({ controllers: [Billing] })
    class AppModule {}
    const err = await listenError(AppModule, { servers: testNatsUrl(), streams: [{ name, subjects: [`${prefix}.orders.>`] }] });
    kit.deleteStreamAfter(name);
    expect(err).toBeInstanceOf(HandlerConfigurationError);
    expect(err.message).toContain(`@EventPattern(${prefix}.invoices.created): no stream captures "${prefix}.invoices.created"`);
    expect(err.message).not.toContain('@OnEvent');
    expect(err.message).toContain(`"${name}" (${prefix}.orders.>)`);
  });
});
