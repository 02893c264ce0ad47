import { ConsumerControl, InvalidOptionsError, ServerFeatureUnavailableError, type EventContext } from '../../lib/index.js';
import { testNatsUrl, waitFor } from '../harness/index.js';
import { freshStream, handlerClass, sharedServerHooks } from './kit.js';
import { hasFeature, refusal } from './server-features-kit.js';

describe('consumer pause and resume (nats-server 2.11+)', () => {
  const hooks = sharedServerHooks();

  async function billingApp(prefix: string) {
    const { stream, subject } = await freshStream(hooks.client.jsm, prefix);
    const handled: Array<{ n: number; at: number; seq: number }> = [];
    const Handler = handlerClass('Billing', subject('charge'), { durable: 'billing' }, (payload: unknown, ctx: EventContext) => {
      handled.push({ n: (payload as { n: number }).n, at: Date.now(), seq: ctx.sequence });
    });
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    return { app, stream, subject, handled, control: app.inner.app.get(ConsumerControl) };
  }

  it('pauses a handler’s consumer until a time: a message published meanwhile is handled only after it', async () => {
    const { app, stream, subject, handled, control } = await billingApp('PAUSE');
    if (!hasFeature(hooks.client, 'consumerPause')) {
      await expect(control.pause('billing', 60_000)).rejects.toBeInstanceOf(ServerFeatureUnavailableError);
      await expect(control.pause('billing', 60_000)).rejects.toThrow(refusal(hooks.client, 'consumerPause'));
      await expect(control.resume('billing')).rejects.toThrow(refusal(hooks.client, 'consumerPause'));
      return;
    }
    await app.publisher.publish(subject('charge'), { n: 1 });
    await waitFor(() => handled.length === 1, { message: 'handled before the pause' });

    const state = await control.pause('billing', 2_500);
    expect(state).toMatchObject({ stream, consumer: 'billing', paused: true });
    const until = state.pauseUntil!.getTime();
    expect((await hooks.client.jsm.consumers.info(stream, 'billing')).paused).toBe(true);
    await app.publisher.publish(subject('charge'), { n: 2 });
    await waitFor(() => handled.length === 2, { timeoutMs: 15_000, message: 'handled once the pause ran out' });
    // Same machine, same clock: the server held it until the pause ended.
    expect(handled[1].at).toBeGreaterThanOrEqual(until - 20);
    expect((await control.state('billing')).paused).toBe(false);
    expect(app.logger.find(/error/i, 'error')).toEqual([]);
  });

  it('resume delivers at once what waited; an unknown consumer name is refused naming the app’s consumers', async () => {
    const { app, stream, subject, handled, control } = await billingApp('RESUME');
    await expect(control.pause('nope', 1_000)).rejects.toThrow(InvalidOptionsError);
    await expect(control.pause('nope', 1_000)).rejects.toThrow(/No handler of this app consumes through "nope" \(its consumers: billing\)/);
    if (!hasFeature(hooks.client, 'consumerPause')) {
      await expect(control.state({ stream, consumer: 'billing' })).rejects.toThrow(refusal(hooks.client, 'consumerPause'));
      return;
    }
    const paused = await control.pause({ stream, consumer: 'billing' }, new Date(Date.now() + 3_600_000));
    expect(paused.paused).toBe(true);
    for (let n = 1; n <= 3; n++) await app.publisher.publish(subject('charge'), { n });
    // The server counts a consumer's pending messages once its consumer loop has taken in the
    // stream's new ones: on a loaded machine a moment after the publish ack, so waited for.
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'billing')).num_pending === 3, {
      timeoutMs: 10_000,
      message: 'the 3 messages counted pending on the paused consumer',
    });
    expect(handled).toEqual([]);
    const resumedAt = Date.now();
    const resumed = await control.resume('billing');
    // The pause ends by the server's timer, RESUME_WITHIN_MS ahead (see consumer-pause.ts for why).
    expect(resumed.pauseUntil === undefined || resumed.pauseUntil.getTime() <= Date.now() + 1_000).toBe(true);
    await waitFor(() => handled.length === 3, { timeoutMs: 15_000, message: 'the 3 waiting messages handled after resume' });
    expect(handled.map((h) => h.n)).toEqual([1, 2, 3]);
    // Well under the 15 s a waiting pull sat through after the server's plain resume request.
    expect(handled[2].at - resumedAt).toBeLessThan(5_000);
    expect(await control.state('billing')).toEqual({ stream, consumer: 'billing', paused: false, pauseUntil: undefined });
    expect(await control.resume('billing')).toEqual({ stream, consumer: 'billing', paused: false, pauseUntil: undefined });
  });
});
