import { InvalidOptionsError, SERVER_FEATURES, ServerFeatureUnavailableError } from '../../lib/index.js';
import { requireServerFeature, versionAtLeast } from '../../lib/options/server-features.js';
import { messageTtl } from '../../lib/producer/message-ttl.js';
import { checkScheduleDefinition, scheduleHeader, type ScheduleTiming } from '../../lib/options/schedule-definition.js';
import { resolveModuleOptions } from '../../lib/options/resolve-module-options.js';

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

describe('schedule timing', () => {
  it('turns at, cron and every into the Nats-Schedule value, never firing early', () => {
    expect(scheduleHeader({ at: new Date('2026-01-01T00:00:00.000Z') }, 'x')).toEqual({ header: '@at 2026-01-01T00:00:00Z', recurring: false });
    expect(scheduleHeader({ at: new Date('2026-01-01T00:00:00.001Z') }, 'x').header).toBe('@at 2026-01-01T00:00:01Z');
    expect(scheduleHeader({ cron: '0 0 6 * * *' }, 'x')).toEqual({ header: '0 0 6 * * *', recurring: true });
    expect(scheduleHeader({ cron: '@daily', timeZone: 'Europe/Paris' }, 'x').header).toBe('@daily');
    expect(scheduleHeader({ every: 1_000 }, 'x').header).toBe('@every 1s');
    expect(scheduleHeader({ every: 1_500 }, 'x').header).toBe('@every 1500ms');
    expect(scheduleHeader({ every: '5m' }, 'x').header).toBe('@every 5m');
  });

  it('refuses what cannot be a schedule, naming where it was declared', () => {
    expect(() => scheduleHeader({} as ScheduleTiming, 'w')).toThrow('w: give exactly one of at, cron and every, got none');
    expect(() => scheduleHeader({ at: new Date(), every: 1_000 } as unknown as ScheduleTiming, 'w')).toThrow('got at, every');
    expect(() => scheduleHeader({ cron: '* * * * *' }, 'w')).toThrow(/has 5 fields; nats-server cron has 6, seconds first/);
    expect(() => scheduleHeader({ every: 999 }, 'w')).toThrow(/at least 1000/);
    expect(() => scheduleHeader({ every: 'often' }, 'w')).toThrow(/not a duration/);
    expect(() => scheduleHeader({ every: '1s', timeZone: 'UTC' } as unknown as ScheduleTiming, 'w')).toThrow(/timeZone applies to cron/);
    expect(() => scheduleHeader({ at: new Date('nope') }, 'w')).toThrow(/valid Date/);
    expect(() => checkScheduleDefinition({ name: 'a.b', subject: 'x.y', every: '1s' }, 'schedules[0]')).toThrow(/letters, digits/);
    expect(() => checkScheduleDefinition({ name: 'ok', subject: 'x.*', every: '1s' }, 'schedules[0]')).toThrow(/schedules\[0\] \(schedule "ok"\)/);
    expect(() => resolveModuleOptions({ schedules: [{ name: 'a', subject: 'x', every: '1s' }, { name: 'a', subject: 'y', every: '2s' }] })).toThrow(
      'schedules: "a" is declared twice',
    );
  });
});
