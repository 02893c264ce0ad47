import {
  InvalidOptionsError,
  JetStreamSchedules,
  ScheduleRejectedError,
  ServerFeatureUnavailableError,
  type EventContext,
  type JetStreamModuleOptions,
  type ScheduleDefinition,
} from '../../lib/index.js';
import { NatsServerProcess, testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { AppTracker, handlerClass, openClient, sharedServerHooks, type RawClient } from './kit.js';
import { hasFeature, refusal } from './server-features-kit.js';

/** Messages stored on a subject: how many times a schedule fired there. */
async function storedOn(client: RawClient, stream: string, subject: string): Promise<number> {
  const info = await client.jsm.streams.info(stream, { subjects_filter: subject });
  return info.state.subjects?.[subject] ?? 0;
}

describe('server-side schedules (nats-server 2.12+ one-shot, 2.14+ cron and @every)', () => {
  const hooks = sharedServerHooks();

  function scheduledStream(stream: string): JetStreamModuleOptions['streams'] {
    return [{ name: stream, subjects: [`${stream}.>`], allow_msg_schedules: true }];
  }

  it('a one-shot schedule fires at its time although the app stopped and the broker restarted meanwhile', async () => {
    const broker = await NatsServerProcess.start();
    const apps = new AppTracker();
    let client: RawClient | undefined;
    try {
      client = await openClient(broker.url);
      const stream = uniqueName('ONESHOT');
      const options = { servers: broker.url, streams: scheduledStream(stream) };
      if (!hasFeature(client, 'scheduleAt')) {
        await expect(apps.start(options)).rejects.toThrow(refusal(client, 'scheduleAt'));
        const plain = await apps.start({ servers: broker.url, streams: [{ name: stream, subjects: [`${stream}.>`] }] });
        const refused = plain.publisher.schedule(`${stream}.reminder`, { id: 1 }, { at: new Date(Date.now() + 60_000) });
        await expect(refused).rejects.toBeInstanceOf(ServerFeatureUnavailableError);
        await expect(plain.publisher.schedule(`${stream}.reminder`, { id: 1 }, { at: new Date() })).rejects.toThrow(refusal(client, 'scheduleAt'));
        expect((await client.jsm.streams.info(stream)).state.messages).toBe(0);
        return;
      }
      const first = await apps.start(options);
      const at = new Date(Date.now() + 6_000);
      const scheduled = await first.publisher.schedule(`${stream}.reminder`, { id: 1 }, { at, name: 'reminder-1' });
      expect(scheduled).toMatchObject({ name: 'reminder-1', stream, scheduleSubject: `_schedules.${stream}.reminder-1`, target: `${stream}.reminder` });
      await apps.closeAll();
      await client.close();
      await broker.kill('SIGKILL');
      await broker.restart();
      client = await openClient(broker.url);

      const handled: Array<{ id: number; at: number; scheduler?: string }> = [];
      const Handler = handlerClass('Reminders', `${stream}.reminder`, { durable: 'reminders' }, (payload: unknown, ctx: EventContext) => {
        handled.push({ id: (payload as { id: number }).id, at: Date.now(), scheduler: ctx.header('Nats-Scheduler') });
      });
      const second = await apps.start(options, [Handler]);
      await waitFor(() => handled.length === 1, { timeoutMs: 30_000, message: 'the one-shot fired after the restart' });
      const fired = (await client.jsm.streams.getMessage(stream, { last_by_subj: `${stream}.reminder` }))!;
      const lateMs = fired.time.getTime() - at.getTime();
      expect(handled[0]).toMatchObject({ id: 1, scheduler: `_schedules.${stream}.reminder-1` });
      // Never early (the time is rounded up to a whole second); late by the server's timer only.
      expect(lateMs).toBeGreaterThanOrEqual(0);
      expect(lateMs).toBeLessThan(5_000);
      process.stdout.write(`[schedules] one-shot stored ${lateMs} ms after its time, across a broker restart\n`);
      // A fired one-shot is gone: nothing left to list or cancel.
      const schedules = second.inner.app.get(JetStreamSchedules);
      expect(await schedules.get(stream, 'reminder-1')).toBeUndefined();
      expect(await schedules.list(stream)).toEqual([]);
    } finally {
      await apps.closeAll();
      await client?.close();
      await broker.stop();
    }
  });

  it('a declared @every schedule fires once per tick with 3 instances running, is created once, reported when changed, and cancel stops it', async () => {
    const stream = uniqueName('EVERY');
    const tick: ScheduleDefinition = { name: 'tick', subject: `${stream}.tick`, every: '1s', payload: { kind: 'tick' } };
    const options = { servers: testNatsUrl(), streams: scheduledStream(stream), schedules: [tick] };
    if (!hasFeature(hooks.client, 'scheduleRecurring')) {
      await expect(hooks.apps.start(options)).rejects.toBeInstanceOf(ServerFeatureUnavailableError);
      // Without the stream flag, the schedule itself is refused with its own version.
      await expect(hooks.apps.start({ ...options, streams: [{ name: stream, subjects: [`${stream}.>`] }] })).rejects.toThrow(
        refusal(hooks.client, 'scheduleRecurring'),
      );
      await hooks.client.jsm.streams.delete(stream);
      return;
    }
    const handled: number[] = [];
    const Handler = handlerClass('Ticks', `${stream}.tick`, { durable: 'ticks' }, (_payload: unknown, ctx: EventContext) => {
      handled.push(ctx.sequence);
    });
    try {
      const instances = await Promise.all([1, 2, 3].map(() => hooks.apps.start(options, [Handler])));
      const created = instances.flatMap((app) => app.logger.find(`Created schedule "tick"`));
      expect(created).toHaveLength(1);
      expect(created[0].message).toBe(`Created schedule "tick" (@every 1s → ${stream}.tick) in stream "${stream}"`);
      const startedAt = Date.now();
      await waitFor(() => handled.length >= 4, { timeoutMs: 20_000, message: '4 ticks handled' });
      const fired = await storedOn(hooks.client, stream, `${stream}.tick`);
      const elapsedS = (Date.now() - startedAt) / 1_000;
      // One schedule, one firing per second: three instances never make three.
      expect(fired).toBeLessThanOrEqual(Math.ceil(elapsedS) + 2);
      expect(new Set(handled).size).toBe(handled.length);
      const schedules = instances[0].inner.app.get(JetStreamSchedules);
      const listed = await schedules.list(stream);
      expect(listed.map((s) => [s.name, s.schedule, s.target, s.payload])).toEqual([['tick', '@every 1s', `${stream}.tick`, { kind: 'tick' }]]);

      // A restart with the same declaration changes nothing; a changed one is replaced and reported.
      const same = await hooks.apps.start(options);
      expect(same.logger.find('schedule "tick"', 'log')).toEqual([]);
      expect((await schedules.get(stream, 'tick'))!.seq).toBe(listed[0].seq);
      const changed = await hooks.apps.start({ ...options, schedules: [{ ...tick, every: '2s', payload: { kind: 'slower' } }] });
      expect(changed.logger.find('Updated schedule "tick"')[0]?.message).toBe(
        `Updated schedule "tick" in stream "${stream}": schedule "@every 1s" → "@every 2s", payload`,
      );
      expect((await schedules.list(stream)).map((s) => [s.schedule, s.payload])).toEqual([['@every 2s', { kind: 'slower' }]]);

      // Cancel, then a one-shot as the clock: once it has fired, a tick would have too.
      expect(await schedules.cancel(stream, 'tick')).toBe(true);
      expect(await schedules.cancel(stream, 'tick')).toBe(false);
      const ticksAtCancel = await storedOn(hooks.client, stream, `${stream}.tick`);
      await changed.publisher.schedule(`${stream}.clock`, { n: 1 }, { at: new Date(Date.now() + 3_000) });
      await waitFor(async () => (await storedOn(hooks.client, stream, `${stream}.clock`)) === 1, { timeoutMs: 20_000, message: 'the clock one-shot fired' });
      expect(await storedOn(hooks.client, stream, `${stream}.tick`)).toBe(ticksAtCancel);
      expect(await schedules.list(stream)).toEqual([]);
    } finally {
      await hooks.apps.closeAll();
      await hooks.client.jsm.streams.delete(stream).catch(() => undefined);
    }
  });

  it('a cron the server cannot parse, a 5-field cron or a stream without allow_msg_schedules stops startup with a clear error', async () => {
    const stream = uniqueName('BADCRON');
    const base = { name: 'report', subject: `${stream}.report`, payload: {} };
    const fiveFields = hooks.apps.start({ servers: testNatsUrl(), schedules: [{ ...base, cron: '0 6 * * *' }] });
    await expect(fiveFields).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(hooks.apps.start({ servers: testNatsUrl(), schedules: [{ ...base, cron: '0 6 * * *' }] })).rejects.toThrow(
      /schedules\[0\] \(schedule "report"\): cron "0 6 \* \* \*" has 5 fields; nats-server cron has 6, seconds first/,
    );
    if (!hasFeature(hooks.client, 'scheduleRecurring')) {
      await expect(hooks.apps.start({ servers: testNatsUrl(), schedules: [{ ...base, cron: '0 0 61 * * *' }] })).rejects.toThrow(
        refusal(hooks.client, 'scheduleRecurring'),
      );
      return;
    }
    try {
      const badCron = { servers: testNatsUrl(), streams: scheduledStream(stream), schedules: [{ ...base, cron: '0 0 61 * * *' }] };
      await expect(hooks.apps.start(badCron)).rejects.toBeInstanceOf(ScheduleRejectedError);
      await expect(hooks.apps.start(badCron)).rejects.toThrow(
        /Schedule "report" was rejected \(code 10189\): nats-server cannot parse "0 0 61 \* \* \*"/,
      );
      const notAllowed = uniqueName('NOSCHED');
      await expect(
        hooks.apps.start({
          servers: testNatsUrl(),
          streams: [{ name: notAllowed, subjects: [`${notAllowed}.>`] }],
          schedules: [{ ...base, subject: `${notAllowed}.report`, cron: '0 0 6 * * *' }],
        }),
      ).rejects.toThrow(`Schedule "report" was rejected: stream "${notAllowed}", which captures "${notAllowed}.report", does not allow schedules; set allow_msg_schedules: true on it`);
      await hooks.client.jsm.streams.delete(notAllowed);
      expect(await storedOn(hooks.client, stream, `_schedules.${stream}.report`)).toBe(0);
    } finally {
      await hooks.client.jsm.streams.delete(stream).catch(() => undefined);
    }
  });
});
