import { Registry } from 'prom-client';
import { InvalidOptionsError } from '../../lib/index.js';
import { resolveModuleOptions } from '../../lib/options/resolve-module-options.js';
import { loadPeer } from '../../lib/observability/load-peer.js';
import { DEFAULT_LATENCY_BUCKETS } from '../../lib/options/observability-options.js';

describe('metrics and tracing options', () => {
  it('are off unless asked for', () => {
    const resolved = resolveModuleOptions({}, {});
    expect(resolved.metrics).toBe(false);
    expect(resolved.tracing).toBe(false);
    expect(resolveModuleOptions({ metrics: false, tracing: false }, {}).metrics).toBe(false);
  });

  it('take defaults from true, and keep what is given', () => {
    const registry = new Registry();
    const label = (s: string) => s.replace(/\.\d+\./, '.*.');
    expect(resolveModuleOptions({ metrics: true, tracing: true }, {})).toMatchObject({
      metrics: { registry: undefined, prefix: '', lagIntervalMs: 15_000, latencyBuckets: DEFAULT_LATENCY_BUCKETS },
      tracing: { tracerName: 'nestjs-jetstream' },
    });
    const resolved = resolveModuleOptions(
      { metrics: { registry, prefix: 'app_', lagIntervalMs: 500, durationBuckets: [0.1, 1], publishSubjectLabel: label }, tracing: { tracerName: 'orders' } },
      {},
    );
    expect(resolved.metrics).toMatchObject({ registry, prefix: 'app_', lagIntervalMs: 500, durationBuckets: [0.1, 1], publishSubjectLabel: label });
    expect(resolved.tracing).toEqual({ tracerName: 'orders' });
  });

  it.each([
    [{ metrics: 'yes' }, /metrics must be true, false or an options object/],
    [{ metrics: { registry: {} } }, /metrics.registry must be a prom-client Registry/],
    [{ metrics: { prefix: 'bad-prefix' } }, /metrics.prefix must be a valid Prometheus name prefix/],
    [{ metrics: { lagIntervalMs: 10 } }, /metrics.lagIntervalMs must be an integer >= 100/],
    [{ metrics: { latencyBuckets: [1, 0.5] } }, /metrics.latencyBuckets must be a non-empty increasing list/],
    [{ metrics: { durationBuckets: [] } }, /metrics.durationBuckets must be a non-empty increasing list/],
    [{ metrics: { publishSubjectLabel: 'x' } }, /metrics.publishSubjectLabel must be a function/],
    [{ tracing: 1 }, /tracing must be true, false or an options object/],
    [{ tracing: { tracerName: '' } }, /tracing.tracerName must be a non-empty string/],
  ])('rejects %p', (options, message) => {
    expect(() => resolveModuleOptions(options as never, {})).toThrow(InvalidOptionsError);
    expect(() => resolveModuleOptions(options as never, {})).toThrow(message);
  });
});

describe('loadPeer', () => {
  it('says which package to install and which option needs it when it is missing', async () => {
    const load = loadPeer<{ x: unknown }>('nestjs-jetstream-no-such-peer', 'metrics', 'x');
    await expect(load).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(load).rejects.toThrow(/^metrics needs the optional peer dependency "nestjs-jetstream-no-such-peer": install it \(npm install nestjs-jetstream-no-such-peer\) or turn metrics off/);
  });

  it('finds the exports of a CommonJS peer and refuses a package without the expected export', async () => {
    const prom = await loadPeer<typeof import('prom-client')>('prom-client', 'metrics', 'Counter');
    expect(typeof prom.Counter).toBe('function');
    await expect(loadPeer<{ Nope: unknown }>('prom-client', 'metrics', 'Nope')).rejects.toThrow(/does not export Nope/);
  });
});
