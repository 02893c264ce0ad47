import 'reflect-metadata';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { consumerInfoOrUndefined, createStream, type Delivery, handlerClass, sharedServerHooks, timestampNanos, toDelivery } from './kit.js';

const TEST_TIMEOUT_MS = 60_000;

/**
 * Where consumers start, whether they remember where they were, and how many handler calls
 * they run at once, all against a real nats-server.
 */
describe('consumers (real nats-server)', () => {
  const shared = sharedServerHooks();
  const apps = shared.apps;

  /** A stream of its own for one test, with `${name}.>` as its subjects. */
  async function freshStream(prefix = 'CONS'): Promise<{ stream: string; subject: (suffix?: string) => string }> {
    const stream = uniqueName(prefix);
    await createStream(shared.client.jsm, stream, [`${stream}.>`]);
    return { stream, subject: (suffix = 'evt') => `${stream}.${suffix}` };
  }

  async function publishRaw(subject: string, payloads: unknown[]): Promise<number[]> {
    const seqs: number[] = [];
    for (const p of payloads) {
      const ack = await shared.client.js.publish(subject, JSON.stringify(p));
      seqs.push(ack.seq);
    }
    return seqs;
  }

  function range(from: number, to: number): number[] {
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  }

  async function waitForSentinel(received: Delivery[], marker = 'sentinel'): Promise<void> {
    await waitFor(() => received.some((d) => (d.payload as { kind?: string })?.kind === marker), {
      timeoutMs: 10_000,
      message: () => `sentinel never arrived; received seqs ${JSON.stringify(received.map((d) => d.seq))}`,
    });
  }

  describe('ephemeral handlers', () => {
    it('see only messages published after startup', async () => {
      const { stream, subject } = await freshStream();
      await publishRaw(subject(), range(1, 5).map((n) => ({ kind: 'old', n })));

      const received: Delivery[] = [];
      const Handler = handlerClass('EphemeralNew', subject(), {}, (payload, ctx) => {
        received.push(toDelivery(payload, ctx));
      });
      const app = await apps.start({ servers: testNatsUrl() }, [Handler]);

      for (const n of [1, 2, 3]) await app.publisher.publish(subject(), { kind: 'new', n });
      await app.publisher.publish(subject(), { kind: 'sentinel' });
      await waitForSentinel(received);

      expect(received.map((d) => d.payload)).toEqual([
        { kind: 'new', n: 1 },
        { kind: 'new', n: 2 },
        { kind: 'new', n: 3 },
        { kind: 'sentinel' },
      ]);
      expect(received.map((d) => d.seq)).toEqual([6, 7, 8, 9]);
      expect(app.consumerName()).toBe(received[0].consumer);
      // Ephemeral: the consumer has a server-generated name and no durable name.
      const info = await shared.client.jsm.consumers.info(stream, app.consumerName());
      expect(info.config.durable_name).toBeUndefined();
    }, TEST_TIMEOUT_MS);

    it('have their consumer deleted from the server on app.close()', async () => {
      const { stream, subject } = await freshStream();
      const received: Delivery[] = [];
      const Handler = handlerClass('EphemeralClose', subject(), {}, (payload, ctx) => {
        received.push(toDelivery(payload, ctx));
      });
      const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
      const name = app.consumerName();
      await app.publisher.publish(subject(), { kind: 'sentinel' });
      await waitForSentinel(received);

      expect(await consumerInfoOrUndefined(shared.client.jsm, stream, name)).toBeDefined();
      await app.close();

      expect(await consumerInfoOrUndefined(shared.client.jsm, stream, name)).toBeUndefined();
      const names: string[] = [];
      for await (const c of shared.client.jsm.consumers.list(stream)) names.push(c.name);
      expect(names).toEqual([]);
    }, TEST_TIMEOUT_MS);
  });

  describe('durable replay policies', () => {
    it('startSequence: replays from that sequence only', async () => {
      const { stream, subject } = await freshStream();
      await publishRaw(subject(), range(1, 10).map((n) => ({ n })));
      const durable = uniqueName('from_seq');

      const received: Delivery[] = [];
      const Handler = handlerClass('FromSeq', subject(), { durable, deliverPolicy: { startSequence: 6 } }, (payload, ctx) => {
        received.push(toDelivery(payload, ctx));
      });
      const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
      await app.publisher.publish(subject(), { kind: 'sentinel' });
      await waitForSentinel(received);

      expect(received.map((d) => d.seq)).toEqual([6, 7, 8, 9, 10, 11]);
      expect(received.slice(0, 5).map((d) => d.payload)).toEqual(range(6, 10).map((n) => ({ n })));
      const info = await shared.client.jsm.consumers.info(stream, durable);
      expect(info.config.opt_start_seq).toBe(6);
    }, TEST_TIMEOUT_MS);

    it('startTime: replays only messages stored at or after that time', async () => {
      const { stream, subject } = await freshStream();
      const before = await publishRaw(subject(), range(1, 3).map((n) => ({ phase: 'before', n })));
      const lastBefore = await shared.client.jsm.streams.getMessage(stream, { seq: before[2] });
      const lastBeforeNs = timestampNanos(lastBefore!.timestamp);
      // The boundary: the first millisecond strictly after the last "before" message was stored.
      const boundaryMs = Number(lastBeforeNs / 1_000_000n) + 1;
      // Same host, same clock: once the clock is past the boundary, later messages are stamped after it.
      await waitFor(() => Date.now() > boundaryMs, { timeoutMs: 1_000, message: 'clock did not advance' });
      const after = await publishRaw(subject(), range(1, 3).map((n) => ({ phase: 'after', n })));
      const firstAfter = await shared.client.jsm.streams.getMessage(stream, { seq: after[0] });
      // Precondition of the test itself, from the stored timestamps.
      expect(timestampNanos(firstAfter!.timestamp)).toBeGreaterThanOrEqual(BigInt(boundaryMs) * 1_000_000n);
      expect(lastBeforeNs).toBeLessThan(BigInt(boundaryMs) * 1_000_000n);

      const durable = uniqueName('from_time');
      const received: Delivery[] = [];
      const Handler = handlerClass(
        'FromTime',
        subject(),
        { durable, deliverPolicy: { startTime: new Date(boundaryMs) } },
        (payload, ctx) => {
          received.push(toDelivery(payload, ctx));
        },
      );
      const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
      await app.publisher.publish(subject(), { kind: 'sentinel' });
      await waitForSentinel(received);

      expect(received.map((d) => d.seq)).toEqual([...after, after[2] + 1]);
      expect(received.slice(0, 3).map((d) => d.payload)).toEqual(range(1, 3).map((n) => ({ phase: 'after', n })));
    }, TEST_TIMEOUT_MS);

    it("'last': starts with the last message in the stream", async () => {
      const { subject } = await freshStream();
      await publishRaw(subject(), range(1, 5).map((n) => ({ n })));
      const received: Delivery[] = [];
      const Handler = handlerClass('FromLast', subject(), { durable: uniqueName('last'), deliverPolicy: 'last' }, (payload, ctx) => {
        received.push(toDelivery(payload, ctx));
      });
      const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
      await app.publisher.publish(subject(), { kind: 'sentinel' });
      await waitForSentinel(received);

      expect(received.map((d) => d.seq)).toEqual([5, 6]);
      expect(received[0].payload).toEqual({ n: 5 });
    }, TEST_TIMEOUT_MS);

    it("'last-per-subject': starts with the last message of each subject the handler matches", async () => {
      const { stream } = await freshStream();
      const s = (t: string) => `${stream}.orders.${t}`;
      await publishRaw(s('a'), [{ id: 'a1' }]); // 1
      await publishRaw(s('b'), [{ id: 'b1' }]); // 2
      await publishRaw(s('a'), [{ id: 'a2' }]); // 3
      await publishRaw(s('c'), [{ id: 'c1' }]); // 4
      await publishRaw(s('b'), [{ id: 'b2' }]); // 5
      await publishRaw(`${stream}.other.x`, [{ id: 'outside the filter' }]); // 6

      const received: Delivery[] = [];
      const Handler = handlerClass(
        'LastPerSubject',
        `${stream}.orders.*`,
        { durable: uniqueName('lps'), deliverPolicy: 'last-per-subject' },
        (payload, ctx) => {
          received.push(toDelivery(payload, ctx));
        },
      );
      const app = await apps.start({ servers: testNatsUrl() }, [Handler]);
      await app.publisher.publish(s('z'), { kind: 'sentinel' }); // 7
      await waitForSentinel(received);

      expect(received.map((d) => d.seq)).toEqual([3, 4, 5, 7]);
      expect(received.slice(0, 3).map((d) => [d.subject, (d.payload as { id: string }).id])).toEqual([
        [s('a'), 'a2'],
        [s('c'), 'c1'],
        [s('b'), 'b2'],
      ]);
    }, TEST_TIMEOUT_MS);
  });

  it('a durable resumes where it left off across an app restart', async () => {
    const { stream, subject } = await freshStream();
    const durable = uniqueName('resume');
    await publishRaw(subject(), range(1, 5).map((n) => ({ n })));

    const first: Delivery[] = [];
    const app1 = await apps.start({ servers: testNatsUrl() }, [
      handlerClass('ResumeFirst', subject(), { durable }, (payload, ctx) => {
        first.push(toDelivery(payload, ctx));
      }),
    ]);
    await waitFor(() => first.length >= 5, { timeoutMs: 10_000, message: () => `first instance got ${first.length}/5` });
    // No waiting for the server to register the acks: close() itself must push them out.
    await app1.close();

    const second: Delivery[] = [];
    const app2 = await apps.start({ servers: testNatsUrl() }, [
      handlerClass('ResumeSecond', subject(), { durable }, (payload, ctx) => {
        second.push(toDelivery(payload, ctx));
      }),
    ]);
    for (const n of [6, 7, 8]) await app2.publisher.publish(subject(), { n });
    await app2.publisher.publish(subject(), { kind: 'sentinel' });
    await waitForSentinel(second);

    expect(first.map((d) => d.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(second.map((d) => d.seq)).toEqual([6, 7, 8, 9]);
    expect(second.every((d) => d.deliveryCount === 1)).toBe(true);

    // And the server agrees: every message acked once, nothing waiting for an ack-wait redelivery.
    await waitFor(
      async () => (await shared.client.jsm.consumers.info(stream, durable)).num_ack_pending === 0,
      { timeoutMs: 10_000, message: 'acks of the second instance never reached the server' },
    );
    const info = await shared.client.jsm.consumers.info(stream, durable);
    expect(info.ack_floor.stream_seq).toBe(9);
    expect(info.num_redelivered).toBe(0);
    expect(info.delivered.consumer_seq).toBe(9);
  }, TEST_TIMEOUT_MS);

  describe('concurrency', () => {
    it('runs at most `concurrency` handler calls at once, and reaches that limit', async () => {
      const { stream, subject } = await freshStream();
      const total = 50;
      await publishRaw(subject(), range(1, total).map((n) => ({ n })));

      let inFlight = 0;
      let maxInFlight = 0;
      let completed = 0;
      const blocked: Array<() => void> = [];
      const durable = uniqueName('conc5');
      const Handler = handlerClass('Concurrency5', subject(), { durable, concurrency: 5 }, async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise<void>((release) => blocked.push(release));
        inFlight--;
        completed++;
      });
      const app = await apps.start({ servers: testNatsUrl() }, [Handler]);

      // Before releasing anything: 5 calls are blocked while the client already holds more
      // messages than that (asked over the app's own connection, so the deliveries counted in
      // the reply were read before it), so the limit, not a lack of messages, holds the rest back.
      await waitFor(() => blocked.length >= 5, { timeoutMs: 10_000, message: () => `${blocked.length} calls blocked, expected 5` });
      await waitFor(
        async () => (await app.connection.jsm.consumers.info(stream, durable)).num_ack_pending >= 20,
        { timeoutMs: 10_000, message: 'the client never buffered messages beyond the concurrency limit' },
      );
      // One more round trip on the app's connection: buffered messages had every chance to start.
      await app.connection.nc.flush();
      expect(inFlight).toBe(5);
      expect(blocked).toHaveLength(5);

      // Then release in rounds; each round the limit must be filled again and never exceeded.
      while (completed < total) {
        const expected = Math.min(5, total - completed);
        await waitFor(() => blocked.length >= expected, {
          timeoutMs: 10_000,
          message: () => `expected ${expected} blocked calls, got ${blocked.length} (in flight ${inFlight}, completed ${completed})`,
        });
        expect(inFlight).toBe(expected);
        const before = completed;
        for (const release of blocked.splice(0)) release();
        await waitFor(() => completed >= before + expected, { timeoutMs: 10_000, message: 'released calls did not complete' });
      }

      expect(completed).toBe(total);
      expect(maxInFlight).toBe(5);
      await waitFor(
        async () => (await shared.client.jsm.consumers.info(stream, durable)).num_ack_pending === 0,
        { timeoutMs: 10_000, message: 'not every message was acked' },
      );
      expect((await shared.client.jsm.consumers.info(stream, durable)).ack_floor.stream_seq).toBe(total);
    }, TEST_TIMEOUT_MS);

    it('concurrency 1 handles messages one at a time in stream order', async () => {
      const { subject } = await freshStream();
      const total = 30;
      await publishRaw(subject(), range(1, total).map((n) => ({ n })));

      const seqs: number[] = [];
      const payloads: number[] = [];
      let inFlight = 0;
      let maxInFlight = 0;
      const Handler = handlerClass('Ordered', subject(), { durable: uniqueName('ordered'), concurrency: 1 }, async (payload, ctx) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        seqs.push(ctx.sequence);
        payloads.push((payload as { n: number }).n);
        // Uneven async work: a later message would overtake an earlier one given the chance.
        await new Promise((resolve) => setTimeout(resolve, (total - ctx.sequence) % 4));
        inFlight--;
      });
      await apps.start({ servers: testNatsUrl() }, [Handler]);
      await waitFor(() => seqs.length >= total, { timeoutMs: 10_000, message: () => `handled ${seqs.length}/${total}` });

      expect(seqs).toEqual(range(1, total));
      expect(payloads).toEqual(range(1, total));
      expect(maxInFlight).toBe(1);
    }, TEST_TIMEOUT_MS);
  });
});
