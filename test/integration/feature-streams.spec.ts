import 'reflect-metadata';
import { Injectable, Module, type DynamicModule, type Type } from '@nestjs/common';
import { JetStreamModule, JetStreamPublisher, OnEvent, type StreamDefinition } from '../../lib/index.js';
import { deferred, testNatsUrl, uniqueName, type Deferred } from '../harness/index.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { sharedServerHooks } from './kit.js';
import { hasFeature, refusal } from './server-features-kit.js';

/**
 * `JetStreamModule.forFeature()`: feature modules declare their own streams; the root ensures
 * them with its own before handlers start, and refuses declarations that contradict each other.
 */

const shared = sharedServerHooks();
const apps: TestApp[] = [];
const created: string[] = [];
afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((a) => a.close()));
});
afterAll(async () => {
  await Promise.allSettled(created.map((s) => shared.client.jsm.streams.delete(s)));
});

function stream(name: string, extra: Partial<StreamDefinition> = {}): StreamDefinition {
  created.push(name);
  return { name, subjects: [`${name}.>`], ...extra };
}

/** A feature module named `name` with its own forFeature streams and one handler on `subject`. */
function featureModule(name: string, feature: DynamicModule, subject?: string, got?: Deferred<unknown>): Type<unknown> {
  @Injectable()
  class Handler {
    @OnEvent(subject ?? `${name}.unused`, { durable: `${name}-handler` })
    handle(payload: unknown) {
      got?.resolve(payload);
    }
  }
  @Module({ imports: [feature], providers: subject ? [Handler] : [] })
  class Feature {}
  Object.defineProperty(Feature, 'name', { value: name });
  return Feature;
}

async function start(imports: ModuleImports, root = JetStreamModule.forRoot({ servers: testNatsUrl() })): Promise<TestApp> {
  const app = await startApp({ imports: [root, ...imports] });
  apps.push(app);
  return app;
}
type ModuleImports = Array<Type<unknown> | DynamicModule>;

async function exists(name: string): Promise<boolean> {
  return shared.client.jsm.streams.info(name).then(
    () => true,
    () => false,
  );
}

describe('JetStreamModule.forFeature', () => {
  it('provisions each feature module\'s streams with the root\'s, and each module\'s handler consumes from its own', async () => {
    const orders = uniqueName('FEAT_ORDERS');
    const billing = uniqueName('FEAT_BILLING');
    const shared_ = uniqueName('FEAT_SHARED');
    const gotOrder = deferred<unknown>();
    const gotInvoice = deferred<unknown>();
    const app = await start([
      // Both declare the same shared stream identically: ensured once, no conflict.
      featureModule('OrdersModule', JetStreamModule.forFeature({ streams: [stream(orders), stream(shared_)] }), `${orders}.placed`, gotOrder),
      featureModule('BillingModule', JetStreamModule.forFeature({ streams: [stream(billing), stream(shared_)] }), `${billing}.issued`, gotInvoice),
    ]);
    expect(await exists(orders)).toBe(true);
    expect(await exists(billing)).toBe(true);
    expect(await exists(shared_)).toBe(true);
    const publisher = app.app.get(JetStreamPublisher);
    await publisher.publish(`${orders}.placed`, { id: 'o-1' });
    await publisher.publish(`${billing}.issued`, { id: 'i-1' });
    await expect(gotOrder.promise).resolves.toEqual({ id: 'o-1' });
    await expect(gotInvoice.promise).resolves.toEqual({ id: 'i-1' });
    expect(app.logger.lines.filter((l) => l.message.startsWith(`Created stream "${shared_}"`))).toHaveLength(1);
  });

  it('the same stream declared differently by two modules fails startup naming both, and creates nothing', async () => {
    const name = uniqueName('FEAT_CLASH');
    await expect(
      start([
        featureModule('OrdersModule', JetStreamModule.forFeature({ streams: [stream(name, { max_msgs: 10 })] })),
        featureModule('AuditModule', JetStreamModule.forFeature({ streams: [stream(name, { max_msgs: 20 })] })),
      ]),
    ).rejects.toThrow(
      `Stream "${name}" is declared by OrdersModule (JetStreamModule.forFeature) and by AuditModule (JetStreamModule.forFeature) with a different max_msgs: declare it once, in the module that owns it`,
    );
    expect(await exists(name)).toBe(false);
  });

  it('streams of different modules capturing the same subjects fail startup naming both', async () => {
    const wide = uniqueName('FEAT_WIDE');
    const narrow = uniqueName('FEAT_NARROW');
    created.push(wide, narrow);
    const root = JetStreamModule.forRoot({ servers: testNatsUrl(), streams: [{ name: wide, subjects: ['feat.>'] }] });
    const feature = featureModule('ShippingModule', JetStreamModule.forFeature({ streams: [{ name: narrow, subjects: ['feat.shipping.*'] }] }));
    await expect(start([feature], root)).rejects.toThrow(
      `Streams "${wide}" (JetStreamModule.forRoot) and "${narrow}" (ShippingModule (JetStreamModule.forFeature)) both capture "feat.>" / "feat.shipping.*": a subject can belong to one stream only`,
    );
    expect(await exists(wide)).toBe(false);
  });

  it('a feature naming a connection no forRoot has fails startup', async () => {
    const name = uniqueName('FEAT_NOCONN');
    await expect(start([featureModule('ReportsModule', JetStreamModule.forFeature({ streams: [stream(name)], connection: 'analytics' }))])).rejects.toThrow(
      `ReportsModule (JetStreamModule.forFeature) declares streams for connection "analytics", but there is no JetStreamModule.forRoot({ name: 'analytics' })`,
    );
    expect(await exists(name)).toBe(false);
  });

  it('a feature stream with a newer server\'s flags gets them on a server that has them, and is refused naming the version on one that has not', async () => {
    const carts = uniqueName('FEAT_TTL');
    const ledger = uniqueName('FEAT_ATOMIC');
    const features = [
      featureModule('CartsModule', JetStreamModule.forFeature({ streams: [stream(carts, { allow_msg_ttl: true })] })),
      featureModule('LedgerModule', JetStreamModule.forFeature({ streams: [stream(ledger, { allow_atomic: true })] })),
    ];
    if (!hasFeature(shared.client, 'messageTtl')) {
      // The server would drop the flag without a word: startup refuses and creates nothing.
      await expect(start(features)).rejects.toThrow(refusal(shared.client, 'messageTtl'));
      await expect(start(features)).rejects.toThrow(new RegExp(`^stream "${carts}" sets allow_msg_ttl: `));
      expect(await exists(carts)).toBe(false);
      expect(await exists(ledger)).toBe(false);
      return;
    }
    if (!hasFeature(shared.client, 'atomicBatch')) {
      await expect(start(features)).rejects.toThrow(refusal(shared.client, 'atomicBatch'));
      return;
    }
    const app = await start(features);
    expect((await shared.client.jsm.streams.info(carts)).config.allow_msg_ttl).toBe(true);
    expect((await shared.client.jsm.streams.info(ledger)).config.allow_atomic).toBe(true);
    expect(app.logger.find(`Created stream "${carts}" (${carts}.>); allows per-message TTL`)).toHaveLength(1);
  });

  it('checks the stream definitions when forFeature is called', () => {
    expect(() => JetStreamModule.forFeature({ streams: [{ name: 'BAD.NAME', subjects: ['x'] }] })).toThrow(
      'JetStreamModule.forFeature: streams[0].name must be a non-empty name without whitespace',
    );
    expect(() => JetStreamModule.forFeature({ streams: [{ name: 'OK', subjects: [] }] })).toThrow('Stream "OK": subjects must be a non-empty array');
    expect(() => JetStreamModule.forFeature(undefined as never)).toThrow('JetStreamModule.forFeature: options must be { streams: [...], connection? }');
  });
});
