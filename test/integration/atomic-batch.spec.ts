import { AtomicBatchRejectedError, InvalidOptionsError, ServerFeatureUnavailableError } from '../../lib/index.js';
import { testNatsUrl, uniqueName } from '../harness/index.js';
import { createStream, sharedServerHooks } from './kit.js';
import { hasFeature, refusal } from './server-features-kit.js';

describe('atomic batch publish (nats-server 2.12+)', () => {
  const hooks = sharedServerHooks();
  const messages = async (stream: string) => (await hooks.client.jsm.streams.info(stream)).state.messages;

  it('stores every item of the batch, in order with consecutive sequences', async () => {
    const stream = uniqueName('ATOMIC');
    const options = { servers: testNatsUrl(), streams: [{ name: stream, subjects: [`${stream}.>`], allow_atomic: true }] };
    if (!hasFeature(hooks.client, 'atomicBatch')) {
      await expect(hooks.apps.start(options)).rejects.toThrow(refusal(hooks.client, 'atomicBatch'));
      return;
    }
    const app = await hooks.apps.start(options);
    try {
      const items = Array.from({ length: 5 }, (_, i) => ({ subject: `${stream}.order.${i % 2}`, payload: { i }, options: { headers: { 'x-i': String(i) } } }));
      const results = await app.publisher.publishBatch(items, { atomic: true });
      expect(results.every((r) => r.ok)).toBe(true);
      const seqs = results.map((r) => (r.ok ? r.result.seq : -1));
      expect(seqs).toEqual([1, 2, 3, 4, 5]);
      for (const [i, seq] of seqs.entries()) {
        const m = (await hooks.client.jsm.streams.getMessage(stream, { seq }))!;
        expect([m.subject, m.json(), m.header.get('x-i')]).toEqual([items[i].subject, { i }, String(i)]);
      }
      expect(await app.publisher.publishBatch([{ subject: `${stream}.one`, payload: 1 }], { atomic: true })).toEqual([
        { ok: true, subject: `${stream}.one`, result: { stream, seq: 6, duplicate: false } },
      ]);
    } finally {
      await hooks.client.jsm.streams.delete(stream);
    }
  });

  it('stores nothing and says why: allow_atomic off, items on two streams, too many items, options a batch item cannot carry', async () => {
    const plain = uniqueName('NOATOMIC');
    await createStream(hooks.client.jsm, plain, [`${plain}.>`]);
    const app = await hooks.apps.start({ servers: testNatsUrl() });
    const items = [1, 2, 3].map((i) => ({ subject: `${plain}.x`, payload: { i } }));
    if (!hasFeature(hooks.client, 'atomicBatch')) {
      await expect(app.publisher.publishBatch(items, { atomic: true })).rejects.toBeInstanceOf(ServerFeatureUnavailableError);
      await expect(app.publisher.publishBatch(items, { atomic: true })).rejects.toThrow(refusal(hooks.client, 'atomicBatch'));
      expect(await messages(plain)).toBe(0);
      return;
    }
    const refused = app.publisher.publishBatch(items, { atomic: true });
    await expect(refused).rejects.toBeInstanceOf(AtomicBatchRejectedError);
    await expect(app.publisher.publishBatch(items, { atomic: true })).rejects.toThrow(
      /Atomic batch of 3 message\(s\) to "NOATOMIC_\S+\.x"… was rejected \(code 10174\), nothing stored: atomic publish is disabled; the stream needs allow_atomic: true/,
    );
    expect(await messages(plain)).toBe(0);

    const atomic = uniqueName('ATOMIC2');
    await createStream(hooks.client.jsm, atomic, [`${atomic}.>`], { allow_atomic: true });
    const spanning = app.publisher.publishBatch(
      [
        { subject: `${atomic}.a`, payload: 1 },
        { subject: `${plain}.b`, payload: 2 },
        { subject: `${atomic}.c`, payload: 3 },
      ],
      { atomic: true },
    );
    await expect(spanning).rejects.toThrow(
      /Atomic batch of 3 message\(s\) to "ATOMIC2_\S+\.a"… was rejected \(code 10176\), nothing stored: .*; every item must be captured by the same stream as the first/,
    );
    expect([await messages(atomic), await messages(plain)]).toEqual([0, 0]);

    const tooMany = Array.from({ length: 1_001 }, (_, i) => ({ subject: `${atomic}.a`, payload: i }));
    await expect(app.publisher.publishBatch(tooMany, { atomic: true })).rejects.toThrow(/at most 1000 messages \(nats-server's limit\), got 1001; nothing was sent/);
    await expect(
      app.publisher.publishBatch([{ subject: `${atomic}.a`, payload: 1, options: { expect: { lastSequence: 0 } } }], { atomic: true }),
    ).rejects.toThrow(InvalidOptionsError);
    await expect(app.publisher.publishBatch([{ subject: `${atomic}.*`, payload: 1 }], { atomic: true })).rejects.toThrow(/Invalid subject/);
    expect(await messages(atomic)).toBe(0);
  });
});
