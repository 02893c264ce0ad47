import 'reflect-metadata';
import { Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Registry } from 'prom-client';
import { JetStreamModule, JetStreamPublisher, type JetStreamModuleOptions } from '../../lib/index.js';
import { JetStreamMetricsModule, type JetStreamMetricsModuleOptions } from '../../lib/metrics/index.js';
import { deferred, testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { CapturingLogger } from '../support/test-app.js';
import { createStream, handlerClass, sharedServerHooks } from './kit.js';

/**
 * `nestjs-jetstream/metrics` in a real HTTP app (Express): a scrape over HTTP returns what the
 * module recorded for real traffic on a real server.
 */

const shared = sharedServerHooks();
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.allSettled(closers.splice(0).map((close) => close()));
});

async function httpApp(jetstream: JetStreamModuleOptions, metrics: JetStreamMetricsModuleOptions | undefined, handlers: Array<new () => unknown>) {
  @Module({ imports: [JetStreamModule.forRoot(jetstream), JetStreamMetricsModule.forRoot(metrics)], providers: handlers })
  class AppModule {}
  const app: INestApplication = await NestFactory.create(AppModule, { logger: new CapturingLogger(), abortOnError: false });
  closers.push(() => app.close());
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as { port: number };
  return { app, base: `http://127.0.0.1:${port}` };
}

describe('JetStreamMetricsModule', () => {
  it('serves the registry the module records in: GET /metrics after real traffic', async () => {
    const stream = uniqueName('MEP');
    await createStream(shared.client.jsm, stream, [`${stream}.>`]);
    const registry = new Registry();
    const handled = deferred();
    const Handler = handlerClass('ScrapedHandler', `${stream}.placed`, { durable: 'scraped' }, () => handled.resolve());
    const { app, base } = await httpApp({ servers: testNatsUrl(), metrics: { registry } }, undefined, [Handler]);

    await app.get(JetStreamPublisher).publish(`${stream}.placed`, { id: 1 });
    await handled.promise;
    // The counter is incremented when the message is settled, just after the handler returns.
    const counted = `nats_consume_total{subject="${stream}.placed",durable="scraped",status="success"} 1`;
    let body = '';
    await waitFor(
      async () => {
        const res = await fetch(`${base}/metrics`);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toBe(registry.contentType);
        body = await res.text();
        return body.includes(counted);
      },
      { message: 'the scraped success counter' },
    );
    expect(body).toContain(`nats_publish_total{subject="${stream}.placed",status="success"} 1`);
    expect(body).toContain('# TYPE nats_handler_duration_seconds histogram');
  });

  it('takes another path, and prom-client\'s default registry when none is given', async () => {
    const { base } = await httpApp({ servers: testNatsUrl(), metrics: { prefix: `mep_${process.pid}_` } }, { path: 'ops/prometheus' }, []);
    const res = await fetch(`${base}/ops/prometheus`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await res.text()).toContain(`# TYPE mep_${process.pid}_nats_consume_total counter`);
    expect((await fetch(`${base}/metrics`)).status).toBe(404);
  });

  it('refuses to start when the module\'s metrics are off, instead of serving an empty registry', async () => {
    await expect(httpApp({ servers: testNatsUrl() }, undefined, [])).rejects.toThrow(
      'JetStreamMetricsModule serves the module\'s metrics, but JetStreamModule.forRoot has metrics off: set metrics: true (or { registry })',
    );
  });

  it('rejects a bad path or connection name when the module is declared', () => {
    expect(() => JetStreamMetricsModule.forRoot({ path: '' })).toThrow('JetStreamMetricsModule: path must be a non-empty string, got ""');
    expect(() => JetStreamMetricsModule.forRoot({ connection: 'a b' })).toThrow(/JetStreamMetricsModule: connection name must match/);
  });
});
