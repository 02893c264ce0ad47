import { InvalidOptionsError, SERVER_FEATURES, ServerFeatureUnavailableError } from '../../lib/index.js';
import { requireServerFeature, versionAtLeast } from '../../lib/options/server-features.js';
import { messageTtl } from '../../lib/producer/message-ttl.js';

describe('server feature gates', () => {
  it('compares versions by number, pre-release suffixes aside', () => {
    expect(versionAtLeast('2.15.1', '2.11.0')).toBe(true);
    expect(versionAtLeast('2.11.0', '2.11.0')).toBe(true);
    expect(versionAtLeast('2.10.27', '2.11.0')).toBe(false);
    expect(versionAtLeast('2.9.10', '2.11.0')).toBe(false);
    expect(versionAtLeast('2.12.0-RC.1', '2.12.0')).toBe(true);
    expect(versionAtLeast('3.0.0', '2.14.0')).toBe(true);
  });

  it('refuses with the feature, the version it needs, the server’s version and the usage', () => {
    expect(() => requireServerFeature({ serverVersion: '2.10.27' }, 'atomicBatch', 'publishBatch')).toThrow(
      new ServerFeatureUnavailableError(SERVER_FEATURES.atomicBatch.name, '2.12.0', '2.10.27', 'publishBatch'),
    );
    expect(() => requireServerFeature({ serverVersion: '2.10.27' }, 'messageTtl', 'x')).toThrow(
      'x: per-message TTL (Nats-TTL, allow_msg_ttl) needs nats-server 2.11.0 or newer; the connected server is 2.10.27',
    );
    expect(() => requireServerFeature({ serverVersion: '2.14.0' }, 'scheduleRecurring', 'x')).not.toThrow();
  });

  it('turns a ttl into a Nats-TTL value, refusing what the server would', () => {
    expect(messageTtl(1_000)).toBe('1000ms');
    expect(messageTtl('10m')).toBe('10m');
    expect(messageTtl('1h30m')).toBe('1h30m');
    expect(messageTtl('never')).toBe('never');
    expect(messageTtl('60')).toBe('60');
    for (const bad of [999, 1.5, -1000, Number.NaN]) expect(() => messageTtl(bad)).toThrow(InvalidOptionsError);
    for (const bad of ['', 'soon', '10 m', '-1s']) expect(() => messageTtl(bad)).toThrow(/not a duration/);
  });
});
