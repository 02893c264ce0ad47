import 'reflect-metadata';
import { Injectable, type ModuleMetadata, type Type } from '@nestjs/common';
import { JetStreamApiError, RetentionPolicy, StorageType, type StreamConfig } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import {
  ConsumerConfigDriftError,
  EventContext,
  HandlerConfigurationError,
  JetStreamLifecycle,
  JetStreamModule,
  JetStreamPublisher,
  OnEvent,
  StreamConfigDriftError,
  StreamProvisioningError,
  type JetStreamModuleOptions,
  type OnEventOptions,
  type StreamDefinition,
} from '../../lib/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { sharedServerHooks } from './kit.js';

/**
 * What the module makes of the server at startup: streams from the options (created, kept,
 * updated, or refused), the stream each handler reads from, and durable consumers.
 */


const hooks = sharedServerHooks();


function options(streams: StreamDefinition[], extra: Partial<JetStreamModuleOptions> = {}): JetStreamModuleOptions {
  return { servers: testNatsUrl(), streams, ...extra };
}

async function start(moduleOptions: JetStreamModuleOptions, providers: Array<Type<unknown>> = []): Promise<TestApp> {
  const app = await startApp({ imports: [JetStreamModule.forRoot(moduleOptions)], providers });
  hooks.apps.track(app);
  return app;
}

/** The startup error; an app that starts anyway is closed and the test fails. */
async function startupError(moduleOptions: JetStreamModuleOptions, providers: Array<Type<unknown>> = []): Promise<Error> {
  const metadata: ModuleMetadata = { imports: [JetStreamModule.forRoot(moduleOptions)], providers };
  let app: TestApp;
  try {
    app = await startApp(metadata);
  } catch (err) {
    return err as Error;
  }
  hooks.apps.track(app);
  throw new Error('expected the application startup to fail, but it started');
}

/** A handler class named `name` with one `@OnEvent(subject, opts)` method `handle`. */
function handler(name: string, subject: string, opts: OnEventOptions = {}, sink: unknown[] = []): Type<unknown> {
  @Injectable()
  class H {
    @OnEvent(subject, opts)
    handle(payload: unknown, ctx: EventContext): void {
      sink.push({ payload, stream: ctx.stream, seq: ctx.sequence });
    }
  }
  Object.defineProperty(H, 'name', { value: name });
  return H;
}

describe('stream provisioning', () => {
  it('creates the streams in the options', async () => {
    const a = uniqueName('PROV_A');
    const b = uniqueName('PROV_B');
    await start(
      options([
        { name: a, subjects: [`${a}.>`], max_msgs: 100 },
        { name: b, subjects: [`${b}.one`, `${b}.two`], storage: StorageType.Memory },
      ]),
    );

    const infoA = await hooks.client.jsm.streams.info(a);
    expect(infoA.config.subjects).toEqual([`${a}.>`]);
    expect(infoA.config.max_msgs).toBe(100);
    const infoB = await hooks.client.jsm.streams.info(b);
    expect(infoB.config.subjects).toEqual([`${b}.one`, `${b}.two`]);
    expect(infoB.config.storage).toBe(StorageType.Memory);
  });

  it('a second start with the same config is idempotent: no error, stream unchanged, messages kept', async () => {
    const name = uniqueName('PROV_IDEM');
    const config = options([{ name, subjects: [`${name}.>`], max_msgs: 50, max_age: nanos(3_600_000) }]);

    const first = await start(config);
    await first.app.get(JetStreamPublisher).publish(`${name}.a`, { n: 1 });
    await first.app.get(JetStreamPublisher).publish(`${name}.b`, { n: 2 });
    await first.close();
    const before = await hooks.client.jsm.streams.info(name);

    const second = await start(config);
    const after = await hooks.client.jsm.streams.info(name);
    expect(after.created).toEqual(before.created);
    expect(after.config).toEqual(before.config);
    expect(after.state.messages).toBe(2);
    expect(after.state.last_seq).toBe(2);
    expect(second.logger.find(`Updated stream "${name}"`)).toEqual([]);
    expect(second.logger.find(`Created stream "${name}"`)).toEqual([]);
  });

  it('fields given with their default value (false, empty) are not drift: a restart does not update the stream', async () => {
    // Regression (fixed): the server omits zero-valued fields such as no_ack=false,
    // discard_new_per_subject=false and description="" from the config it returns, and
    // diffConfig (lib/provisioning/config-diff.ts) compares them with `undefined`, so every
    // start "updates" an unchanged stream: a needless $JS.API.STREAM.UPDATE (fatal for an app
    // allowed only to read stream info) and a misleading "Updated stream" log line.
    const name = uniqueName('PROV_ZERO');
    const config = options([{ name, subjects: [`${name}.>`], no_ack: false, discard_new_per_subject: false, description: '' }]);
    const first = await start(config);
    await first.app.get(JetStreamPublisher).publish(`${name}.a`, { n: 1 });
    await first.close();
    const before = await hooks.client.jsm.streams.info(name);

    const second = await start(config);
    const after = await hooks.client.jsm.streams.info(name);
    expect(after.config).toEqual(before.config);
    expect(after.state.messages).toBe(1);
    expect(second.logger.find(`Updated stream "${name}"`)).toEqual([]);
  });

  it('an allowed change (another subject, a larger max_msgs) updates the stream in place', async () => {
    const name = uniqueName('PROV_UPD');
    const first = await start(options([{ name, subjects: [`${name}.a.>`], max_msgs: 10 }]));
    await first.app.get(JetStreamPublisher).publish(`${name}.a.x`, { n: 1 });
    await first.close();

    const second = await start(options([{ name, subjects: [`${name}.a.>`, `${name}.b.>`], max_msgs: 20 }]));
    const info = await hooks.client.jsm.streams.info(name);
    expect([...(info.config.subjects ?? [])].sort()).toEqual([`${name}.a.>`, `${name}.b.>`]);
    expect(info.config.max_msgs).toBe(20);
    expect(info.state.messages).toBe(1);
    expect(second.logger.find(`Updated stream "${name}"`)).toHaveLength(1);
    // The new subject is captured now.
    const ack = await second.app.get(JetStreamPublisher).publish(`${name}.b.y`, { n: 2 });
    expect(ack).toEqual({ stream: name, seq: 2, duplicate: false });
  });

  it.each<[string, Partial<StreamConfig>, Partial<StreamConfig>, string]>([
    ['storage file -> memory', { storage: StorageType.File }, { storage: StorageType.Memory }, 'storage'],
    ['retention limits -> workqueue', { retention: RetentionPolicy.Limits }, { retention: RetentionPolicy.Workqueue }, 'retention'],
  ])('a disallowed change (%s) fails the startup with StreamConfigDriftError', async (_label, was, now, field) => {
    const name = uniqueName('PROV_DRIFT');
    const first = await start(options([{ name, subjects: [`${name}.>`], ...was }]));
    await first.app.get(JetStreamPublisher).publish(`${name}.x`, { keep: true });
    await first.close();

    const err = await startupError(options([{ name, subjects: [`${name}.>`], ...now }]));
    expect(err).toBeInstanceOf(StreamConfigDriftError);
    const drift = err as StreamConfigDriftError;
    expect(drift.stream).toBe(name);
    expect(drift.fields).toEqual([field]);
    expect(drift.message).toContain(`Stream "${name}"`);
    expect(drift.message).toContain(field);
    // The stream is left exactly as it was, data included.
    const info = await hooks.client.jsm.streams.info(name);
    expect(info.config[field as keyof StreamConfig]).toBe(was[field as keyof StreamConfig]);
    expect(info.state.messages).toBe(1);
  });

  it('retention limits -> interest, a change the server accepts, updates the stream', async () => {
    // Regression (fixed): IMMUTABLE_STREAM_FIELDS in lib/provisioning/stream-provisioner.ts
    // lists every retention change as impossible, but nats-server >= 2.10 updates limits <->
    // interest in place (only changes to/from workqueue are refused), so the module refuses a
    // change the server allows although its options promise "updated when the change is allowed".
    const name = uniqueName('PROV_RET');
    const first = await start(options([{ name, subjects: [`${name}.>`], retention: RetentionPolicy.Limits }]));
    await first.close();

    await start(options([{ name, subjects: [`${name}.>`], retention: RetentionPolicy.Interest }]));
    expect((await hooks.client.jsm.streams.info(name)).config.retention).toBe(RetentionPolicy.Interest);
  });

  it('a stream the server refuses to create (subjects overlap another stream) fails with StreamProvisioningError', async () => {
    const prefix = uniqueName('PROV_OVL');
    const owner = `${prefix}_OWNER`;
    await hooks.client.jsm.streams.add({ name: owner, subjects: [`${prefix}.>`] });
    const name = `${prefix}_NEW`;

    const err = await startupError(options([{ name, subjects: [`${prefix}.orders`] }]));
    expect(err).toBeInstanceOf(StreamProvisioningError);
    expect((err as StreamProvisioningError).stream).toBe(name);
    expect(err.message).toContain(`Stream "${name}" could not be created`);
    expect(err.message).toMatch(/overlap/i);
    expect(err.cause).toBeInstanceOf(JetStreamApiError);
    await expect(hooks.client.jsm.streams.info(name)).rejects.toThrow(/stream not found/i);
  });
});

describe('stream resolution for handlers', () => {
  it('a handler whose subject no stream captures fails with HandlerConfigurationError naming the method', async () => {
    const name = uniqueName('RES_NONE');
    const err = await startupError(options([{ name, subjects: [`${name}.orders.>`] }]), [
      handler('Billing', `${name}.invoices.created`),
    ]);
    expect(err).toBeInstanceOf(HandlerConfigurationError);
    expect(err.message).toContain('Billing.handle');
    expect(err.message).toContain(`no stream captures "${name}.invoices.created"`);
  });

  it('two streams capturing the subject: the error lists both, and the stream option resolves it', async () => {
    const prefix = uniqueName('RES_TWO');
    const east = `${prefix}_EAST`;
    const west = `${prefix}_WEST`;
    const streams = [
      { name: east, subjects: [`${prefix}.east.>`] },
      { name: west, subjects: [`${prefix}.west.>`] },
    ];

    const err = await startupError(options(streams), [handler('Audit', `${prefix}.>`)]);
    expect(err).toBeInstanceOf(HandlerConfigurationError);
    expect(err.message).toContain('Audit.handle');
    expect(err.message).toContain(`"${east}"`);
    expect(err.message).toContain(`"${west}"`);
    expect(err.message).toContain('"stream" option');

    const sink: Array<{ stream: string }> = [];
    const app = await start(options(streams), [handler('Audit', `${prefix}.>`, { stream: west }, sink)]);
    expect(app.app.get(JetStreamLifecycle).handlers.map((h) => h.stream)).toEqual([west]);
    await app.app.get(JetStreamPublisher).publish(`${prefix}.west.created`, { n: 1 });
    await waitFor(() => sink.length === 1, { timeoutMs: 5_000, message: 'Audit.handle to receive from the west stream' });
    expect(sink[0].stream).toBe(west);
  });

  it('finds a stream created outside the module on the server', async () => {
    const name = uniqueName('RES_EXT');
    await hooks.client.jsm.streams.add({ name, subjects: [`${name}.>`] });
    const sink: Array<{ payload: unknown; stream: string }> = [];

    const app = await start(options([]), [handler('Shipping', `${name}.shipped`, {}, sink)]);
    expect(app.app.get(JetStreamLifecycle).handlers).toEqual([
      expect.objectContaining({ handlerId: 'Shipping.handle', subject: `${name}.shipped`, stream: name }),
    ]);
    await hooks.client.js.publish(`${name}.shipped`, JSON.stringify({ parcel: 7 }));
    await waitFor(() => sink.length === 1, { timeoutMs: 5_000, message: 'Shipping.handle to receive the parcel' });
    expect(sink[0]).toMatchObject({ payload: { parcel: 7 }, stream: name });
  });

  it('an explicit stream option naming a missing stream fails with HandlerConfigurationError', async () => {
    const name = uniqueName('RES_MISSING');
    const err = await startupError(options([{ name, subjects: [`${name}.>`] }]), [
      handler('Ghost', `${name}.x`, { stream: `${name}_NOPE` }),
    ]);
    expect(err).toBeInstanceOf(HandlerConfigurationError);
    expect(err.message).toContain('Ghost.handle');
    expect(err.message).toContain(`stream "${name}_NOPE" does not exist`);
  });
});

describe('durable consumers', () => {
  it.each([
    ['the same subject', false],
    ['different subjects', true],
  ])('two handlers sharing a durable on %s fail with HandlerConfigurationError naming both', async (_label, differ) => {
    const name = uniqueName('DUR_CLASH');
    const durable = uniqueName('shared');
    const err = await startupError(options([{ name, subjects: [`${name}.>`] }]), [
      handler('Invoicing', `${name}.orders`, { durable }),
      handler('Reporting', differ ? `${name}.refunds` : `${name}.orders`, { durable }),
    ]);
    expect(err).toBeInstanceOf(HandlerConfigurationError);
    expect(err.message).toContain(`"${durable}"`);
    expect(err.message).toContain('Invoicing.handle');
    expect(err.message).toContain('Reporting.handle');
    // Nothing was created for either handler.
    await expect(hooks.client.jsm.consumers.info(name, durable)).rejects.toThrow(/consumer not found/i);
  });

  it('restarting a durable with another start position fails with ConsumerConfigDriftError naming the field', async () => {
    const name = uniqueName('DUR_DRIFT');
    const durable = uniqueName('drift');
    const streams = [{ name, subjects: [`${name}.>`] }];

    const first = await start(options(streams), [handler('Ledger', `${name}.entries`, { durable, deliverPolicy: 'all' })]);
    await first.close();
    const created = await hooks.client.jsm.consumers.info(name, durable);
    expect(created.config.deliver_policy).toBe('all');

    const err = await startupError(options(streams), [handler('Ledger', `${name}.entries`, { durable, deliverPolicy: { startSequence: 5 } })]);
    expect(err).toBeInstanceOf(ConsumerConfigDriftError);
    const drift = err as ConsumerConfigDriftError;
    expect(drift.stream).toBe(name);
    expect(drift.durable).toBe(durable);
    expect(drift.fields).toContain('deliver_policy');
    expect(drift.message).toContain(`Durable consumer "${durable}"`);
    expect(drift.message).toContain('deliver_policy');
    expect(drift.message).toContain('Ledger.handle');
    // The durable on the server is untouched.
    const after = await hooks.client.jsm.consumers.info(name, durable);
    expect(after.config.deliver_policy).toBe('all');
    expect(after.config.opt_start_seq).toBeUndefined();
  });

  it('restarting a durable with the same start time is not drift', async () => {
    const name = uniqueName('DUR_TIME');
    const durable = uniqueName('since');
    const streams = [{ name, subjects: [`${name}.>`] }];
    const since = new Date(Date.now() - 60_000);
    const first = await start(options(streams), [handler('Since', `${name}.e`, { durable, deliverPolicy: { startTime: since } })]);
    await first.close();
    const created = await hooks.client.jsm.consumers.info(name, durable);
    expect(created.config.deliver_policy).toBe('by_start_time');

    const second = await start(options(streams), [handler('Since', `${name}.e`, { durable, deliverPolicy: { startTime: new Date(since.getTime()) } })]);
    expect(second.app.get(JetStreamLifecycle).handlers.map((h) => h.consumer)).toEqual([durable]);
    expect((await hooks.client.jsm.consumers.info(name, durable)).created).toEqual(created.created);
  });

  it('changing ackWaitMs on restart updates the durable in place, keeping its position', async () => {
    const name = uniqueName('DUR_ACK');
    const durable = uniqueName('ackwait');
    const streams = [{ name, subjects: [`${name}.>`] }];
    const sink: unknown[] = [];

    const first = await start(options(streams), [handler('Mailer', `${name}.mail`, { durable, ackWaitMs: 30_000 }, sink)]);
    expect((await hooks.client.jsm.consumers.info(name, durable)).config.ack_wait).toBe(nanos(30_000));
    await first.app.get(JetStreamPublisher).publish(`${name}.mail`, { n: 1 });
    await waitFor(() => sink.length === 1, { timeoutMs: 5_000, message: 'Mailer.handle to receive message 1' });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(name, durable)).ack_floor.stream_seq === 1, {
      timeoutMs: 5_000,
      message: 'message 1 to be acked',
    });
    await first.close();

    const second = await start(options(streams), [handler('Mailer', `${name}.mail`, { durable, ackWaitMs: 12_000 }, sink)]);
    const info = await hooks.client.jsm.consumers.info(name, durable);
    expect(info.config.ack_wait).toBe(nanos(12_000));
    expect(info.config.deliver_policy).toBe('all');
    expect(second.logger.find(`Updated durable consumer "${durable}"`)).toHaveLength(1);
    // Same consumer, same position: only the new message arrives.
    await second.app.get(JetStreamPublisher).publish(`${name}.mail`, { n: 2 });
    await waitFor(() => sink.length === 2, { timeoutMs: 5_000, message: 'Mailer.handle to receive message 2' });
    expect(sink.map((s) => (s as { payload: unknown }).payload)).toEqual([{ n: 1 }, { n: 2 }]);
  });
});
