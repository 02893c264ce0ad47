import {
  InvalidOptionsError,
  ServerFeatureUnavailableError,
  StreamFeatureDisabledError,
} from '../../lib/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { createStream, sharedServerHooks } from './kit.js';
import { hasFeature, refusal } from './server-features-kit.js';

describe('per-message TTL (nats-server 2.11+)', () => {
  const hooks = sharedServerHooks();

  async function messageStored(stream: string, seq: number): Promise<boolean> {
    try {
      return (await hooks.client.jsm.streams.getMessage(stream, { seq })) !== null;
    } catch {
      return false;
    }
  }

  it('a declared stream gets allow_msg_ttl, and a message published with a ttl is gone after it while one without stays', async () => {
    const stream = uniqueName('TTL');
    const options = { servers: testNatsUrl(), streams: [{ name: stream, subjects: [`${stream}.>`], allow_msg_ttl: true }] };
    if (!hasFeature(hooks.client, 'messageTtl')) {
      await expect(hooks.apps.start(options)).rejects.toThrow(refusal(hooks.client, 'messageTtl'));
      await expect(hooks.apps.start(options)).rejects.toThrow(/stream ".*" sets allow_msg_ttl: per-message TTL/);
      return;
    }
    const app = await hooks.apps.start(options);
    try {
      expect((await hooks.client.jsm.streams.info(stream)).config.allow_msg_ttl).toBe(true);
      expect(app.logger.find(`Created stream "${stream}"`)[0]?.message).toContain('allows per-message TTL');
      const kept = await app.publisher.publish(`${stream}.kept`, { n: 0 });
      const short = await app.publisher.publish(`${stream}.short`, { n: 1 }, { ttl: 1_000 });
      const long = await app.publisher.publish(`${stream}.long`, { n: 2 }, { ttl: '10m' });
      const storedAt = (await hooks.client.jsm.streams.getMessage(stream, { seq: short.seq }))!.time.getTime();
      expect((await hooks.client.jsm.streams.getMessage(stream, { seq: short.seq }))!.header.get('Nats-TTL')).toBe('1000ms');
      await waitFor(async () => !(await messageStored(stream, short.seq)), { timeoutMs: 15_000, message: 'the 1 s message expired' });
      // Expired no earlier than stated (the server's clock stamped it; ours checks after).
      expect(Date.now() - storedAt).toBeGreaterThanOrEqual(1_000);
      expect(await messageStored(stream, kept.seq)).toBe(true);
      expect(await messageStored(stream, long.seq)).toBe(true);
    } finally {
      await hooks.client.jsm.streams.delete(stream);
    }
  });

  it('a ttl on a stream without allow_msg_ttl is refused naming the flag; a malformed ttl is refused before sending', async () => {
    const stream = uniqueName('NOTTL');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const app = await hooks.apps.start({ servers: testNatsUrl() });
    if (!hasFeature(hooks.client, 'messageTtl')) {
      const refused = app.publisher.publish(`${stream}.x`, { n: 1 }, { ttl: '1m' });
      await expect(refused).rejects.toBeInstanceOf(ServerFeatureUnavailableError);
      await expect(app.publisher.publish(`${stream}.x`, { n: 1 }, { ttl: '1m' })).rejects.toThrow(refusal(hooks.client, 'messageTtl'));
      expect((await hooks.client.jsm.streams.info(stream)).state.messages).toBe(0);
      return;
    }
    const refused = app.publisher.publish(`${stream}.x`, { n: 1 }, { ttl: '1m' });
    await expect(refused).rejects.toBeInstanceOf(StreamFeatureDisabledError);
    await expect(app.publisher.publish(`${stream}.x`, { n: 1 }, { ttl: '1m' })).rejects.toThrow(
      /rejected \(code 10166\): per-message TTL is disabled; the stream that captures it needs allow_msg_ttl: true/,
    );
    await expect(app.publisher.publish(`${stream}.x`, { n: 1 }, { ttl: 500 })).rejects.toThrow(InvalidOptionsError);
    await expect(app.publisher.publish(`${stream}.x`, { n: 1 }, { ttl: 'soon' })).rejects.toThrow(/not a duration/);
    expect((await hooks.client.jsm.streams.info(stream)).state.messages).toBe(0);
  });
});
