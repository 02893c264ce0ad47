import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { IsInt, IsOptional, IsString } from 'class-validator';
import {
  DeadLetterService,
  EventContext,
  HandlerTimeoutError,
  OnEvent,
  PublishRejectedError,
  type DeadLetter,
  type HandledEvent,
} from '../../lib/index.js';
import { NatsServerProcess, uniqueName, waitFor } from '../harness/index.js';
import { AppTracker, createStream, openClient, type JetStreamTestApp, type RawClient } from '../integration/kit.js';
import { Tally } from './tally.js';

/**
 * Poison input against a running consumer: every hostile message ends in the dead-letter stream
 * with a reason, or has the outcome documented in the README table, while the good messages
 * published between them are all handled and the process carries on.
 *
 * A server of our own with a small max_payload makes "near the limit" cheap to reach.
 */
const MAX_PAYLOAD = 64 * 1024;

class Order {
  @IsString() id!: string;
  @IsInt() qty!: number;
  @IsOptional() @IsString() pad?: string;
}

const enc = new TextEncoder();
const json = (value: unknown) => enc.encode(JSON.stringify(value));
// Arrays nested far deeper than class-transformer's recursion survives; well under max_payload.
const DEEP_DEPTH = 20_000;
const deepJson = (id: string) => enc.encode(`{"id":"${id}","qty":1,"nest":${'['.repeat(DEEP_DEPTH)}${']'.repeat(DEEP_DEPTH)}}`);

interface PoisonCase {
  readonly name: string;
  readonly data: Uint8Array;
  /** Expected dead-letter reason, or 'handled' when the documented outcome is a normal call. */
  readonly expect: string;
  /** Expected error name in the dead letter. */
  readonly errorName?: string;
  readonly errorMatch?: RegExp;
}

let server: NatsServerProcess;
let client: RawClient;
const apps = new AppTracker();
const crashes: unknown[] = [];
const onCrash = (err: unknown) => crashes.push(err);

beforeAll(async () => {
  server = await NatsServerProcess.start({ config: `max_payload: ${MAX_PAYLOAD}\n` });
  client = await openClient(server.url);
  process.on('unhandledRejection', onCrash);
  process.on('uncaughtException', onCrash);
});
afterAll(async () => {
  process.off('unhandledRejection', onCrash);
  process.off('uncaughtException', onCrash);
  await apps.closeAll();
  await client?.close();
  await server?.stop();
});

async function lettersFor(app: JetStreamTestApp, stream: string, subject: string, count: number): Promise<DeadLetter[]> {
  const service = app.inner.app.get(DeadLetterService);
  let letters: DeadLetter[] = [];
  await waitFor(async () => (letters = await service.list({ stream, subject })).length >= count, {
    timeoutMs: 30_000,
    // Each listing is a server round trip with a consumer of its own: poll gently.
    intervalMs: 250,
    message: `${count} dead letters on ${subject}`,
  });
  return letters;
}

function expectNoPollution(): void {
  const probe = {} as Record<string, unknown>;
  expect(probe.polluted).toBeUndefined();
  expect(probe.polluted2).toBeUndefined();
  expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
  expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted2')).toBe(false);
}

describe('poison input', () => {
  it('dead-letters every poison message with a reason, handles every good one, and keeps running', async () => {
    const stream = uniqueName('POISON');
    const dlqStream = uniqueName('POISON_DLQ');
    await createStream(client.jsm, stream, [`${stream}.>`]);
    const typedSubject = `${stream}.orders`;
    const untypedSubject = `${stream}.raw`;

    // Keyed by stream sequence, the one id every input has: published once the stream confirms
    // it, handled when a handler call ran to its end, accounted for in the dead-letter stream.
    const tally = new Tally();
    const handledTyped = new Map<string, number>();
    const typedInstances: Order[] = [];
    const untypedSeen: Array<{ marker: string; payload: unknown }> = [];

    @Injectable()
    class Orders {
      @OnEvent(typedSubject, {
        durable: 'orders',
        dlq: { stream: dlqStream, subject: `${dlqStream}.orders` },
        retry: { maxAttempts: 3, initialDelayMs: 50, maxDelayMs: 200, jitter: false },
        timeoutMs: 500,
        concurrency: 4,
      })
      async handle(order: Order, ctx: EventContext): Promise<void> {
        switch (order.id) {
          case 'hang':
            await new Promise<never>(() => undefined);
            return;
          case 'throw-string':
            throw 'plain string thrown';
          case 'throw-object':
            throw { code: 42, detail: 'an object, not an Error' };
          case 'throw-undefined':
            throw undefined;
          default:
            typedInstances.push(order);
            handledTyped.set(order.id, (handledTyped.get(order.id) ?? 0) + 1);
            tally.handle(String(ctx.sequence));
        }
      }
    }

    @Injectable()
    class RawInbox {
      @OnEvent(untypedSubject, { durable: 'raw', dlq: { stream: dlqStream, subject: `${dlqStream}.raw` }, retry: { maxAttempts: 2, initialDelayMs: 50, jitter: false } })
      async handle(payload: unknown, ctx: EventContext): Promise<void> {
        // The test marks each untyped message by a header-free convention: the order it arrives in
        // does not matter, only what the handler was given.
        untypedSeen.push({ marker: describeShape(payload), payload });
        tally.handle(String(ctx.sequence));
      }
    }

    const app = await apps.start({ servers: server.url }, [Orders, RawInbox]);
    const events: HandledEvent[] = [];
    app.lifecycle.onHandled((e) => events.push(e));

    const nearMax = MAX_PAYLOAD - 1_024;
    const padFor = (id: string, size: number) => 'x'.repeat(size - JSON.stringify({ id, qty: 1, pad: '' }).length);
    const typedPoison: PoisonCase[] = [
      { name: 'not JSON', data: enc.encode('not json {'), expect: 'invalid-payload', errorMatch: /not valid JSON/ },
      { name: 'JSON of the wrong shape (array)', data: json([1, 2, 3]), expect: 'invalid-payload', errorMatch: /must be a JSON object, got an array/ },
      { name: 'JSON of the wrong shape (string)', data: json('just a string'), expect: 'invalid-payload', errorMatch: /got string/ },
      { name: 'wrong types', data: json({ id: 5, qty: 'three' }), expect: 'invalid-payload', errorMatch: /id: .*string[\s\S]*qty: .*integer/ },
      { name: 'null', data: json(null), expect: 'invalid-payload', errorMatch: /got null/ },
      { name: 'empty payload', data: new Uint8Array(0), expect: 'invalid-payload', errorMatch: /empty payload/ },
      { name: 'invalid UTF-8', data: Uint8Array.from([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]), expect: 'invalid-payload', errorMatch: /not valid UTF-8/ },
      { name: 'fields smuggled through __proto__', data: enc.encode('{"__proto__":{"id":"smuggled","qty":1}}'), expect: 'invalid-payload', errorMatch: /id: / },
      { name: 'deeply nested JSON (20 000 levels)', data: deepJson('deep'), expect: 'invalid-payload', errorMatch: /nested too deeply/ },
      { name: 'invalid payload near max_payload', data: json({ id: 'big-bad', qty: 'many', pad: padFor('big-bad', nearMax) }), expect: 'invalid-payload', errorMatch: /qty/ },
      { name: 'handler never settles', data: json({ id: 'hang', qty: 1 }), expect: 'exhausted', errorName: 'HandlerTimeoutError', errorMatch: /did not settle within 500 ms/ },
      { name: 'handler throws a string', data: json({ id: 'throw-string', qty: 1 }), expect: 'exhausted', errorName: 'string', errorMatch: /plain string thrown/ },
      { name: 'handler throws a plain object', data: json({ id: 'throw-object', qty: 1 }), expect: 'exhausted', errorName: 'object', errorMatch: /"code":42/ },
      { name: 'handler throws undefined', data: json({ id: 'throw-undefined', qty: 1 }), expect: 'exhausted', errorName: 'undefined' },
    ];
    // Handled by design: prototype keys are dropped by class-transformer, never assigned.
    const typedHandledByDesign: PoisonCase[] = [
      {
        name: '__proto__ / constructor keys',
        data: enc.encode('{"id":"proto","qty":1,"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted2":true}}}'),
        expect: 'handled',
      },
      { name: 'valid payload near max_payload', data: json({ id: 'big-good', qty: 1, pad: padFor('big-good', nearMax) }), expect: 'handled' },
    ];

    const untypedPoison: PoisonCase[] = [
      { name: 'not JSON', data: enc.encode('{{{'), expect: 'invalid-payload', errorMatch: /not valid JSON/ },
      { name: 'invalid UTF-8', data: Uint8Array.from([0x22, 0xc0, 0xaf, 0x22]), expect: 'invalid-payload', errorMatch: /not valid UTF-8/ },
    ];
    const untypedHandled: Array<PoisonCase & { shape: string }> = [
      { name: 'null', data: json(null), expect: 'handled', shape: 'null' },
      { name: 'empty payload', data: new Uint8Array(0), expect: 'handled', shape: 'undefined' },
      { name: 'JSON array', data: json([1, 'two']), expect: 'handled', shape: 'array' },
      { name: '__proto__ / constructor keys', data: enc.encode('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted2":true}}}'), expect: 'handled', shape: 'object:__proto__,constructor' },
      { name: 'deeply nested JSON (20 000 levels)', data: enc.encode(`${'['.repeat(DEEP_DEPTH)}${']'.repeat(DEEP_DEPTH)}`), expect: 'handled', shape: 'array' },
    ];

    // Good messages between every poison one, on both subjects.
    const goodIds: string[] = [];
    const goodSeqs: string[] = [];
    const seqOf = new Map<PoisonCase, string>();
    let good = 0;
    const publish = async (data: unknown, subjectName = typedSubject) => {
      const seq = String((await app.publisher.publish(subjectName, data)).seq);
      tally.confirmPublished(seq);
      return seq;
    };
    const publishGood = async () => {
      const id = `good-${++good}`;
      goodIds.push(id);
      goodSeqs.push(await publish({ id, qty: good }));
    };
    const started = performance.now();
    await publishGood();
    for (const c of [...typedPoison, ...typedHandledByDesign]) {
      seqOf.set(c, await publish(c.data));
      await publishGood();
    }
    for (const c of [...untypedPoison, ...untypedHandled]) {
      seqOf.set(c, await publish(c.data, untypedSubject));
      await publishGood();
    }

    // Publishing over the limit is refused at once by the client, with the sizes in the message.
    const overMax = { id: 'too-big', qty: 1, pad: 'x'.repeat(MAX_PAYLOAD) };
    const overError = await app.publisher.publish(typedSubject, overMax).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(overError).toBeInstanceOf(PublishRejectedError);
    expect((overError as Error).message).toMatch(new RegExp(`Publish to "${typedSubject}" was rejected: payload of \\d+ bytes exceeds the server's max_payload of ${MAX_PAYLOAD} bytes`));

    const typedLetters = await lettersFor(app, dlqStream, `${dlqStream}.orders`, typedPoison.length);
    const untypedLetters = await lettersFor(app, dlqStream, `${dlqStream}.raw`, untypedPoison.length);
    for (const letter of [...typedLetters, ...untypedLetters]) tally.deadLetter(String(letter.originalSequence));
    await waitFor(() => goodIds.every((id) => handledTyped.has(id)) && typedHandledByDesign.every((c) => handledTyped.has(idOf(c))), {
      timeoutMs: 30_000,
      message: 'every good message handled',
    });
    await waitFor(() => untypedSeen.length >= untypedHandled.length, { timeoutMs: 15_000, message: 'untyped payloads handled' });
    // Nothing left pending on either consumer: every message was settled one way or the other.
    for (const durable of ['orders', 'raw']) {
      await waitFor(
        async () => {
          const info = await client.jsm.consumers.info(stream, durable);
          return info.num_ack_pending === 0 && info.num_pending === 0;
        },
        { timeoutMs: 15_000, message: `consumer ${durable} fully settled` },
      );
    }
    const elapsedMs = Math.round(performance.now() - started);

    // Each poison message is in the dead-letter stream once, byte for byte, with its reason.
    expect(typedLetters).toHaveLength(typedPoison.length);
    for (const c of typedPoison) {
      const letter = typedLetters.find((l) => Buffer.from(l.data).equals(Buffer.from(c.data)));
      expect({ case: c.name, found: Boolean(letter) }).toEqual({ case: c.name, found: true });
      expect({ case: c.name, reason: letter!.reason }).toEqual({ case: c.name, reason: c.expect });
      if (c.errorName) expect({ case: c.name, error: letter!.error.name }).toEqual({ case: c.name, error: c.errorName });
      if (c.errorMatch) expect(letter!.error.message).toMatch(c.errorMatch);
      expect(letter!.originalSequence).toBe(Number(seqOf.get(c)));
      tally.record(`poison: ${c.name}`, `dead-lettered: ${c.expect} (${letter!.error.name})`, { ids: [seqOf.get(c)!] });
    }
    expect(untypedLetters).toHaveLength(untypedPoison.length);
    for (const c of untypedPoison) {
      const letter = untypedLetters.find((l) => Buffer.from(l.data).equals(Buffer.from(c.data)));
      expect({ case: c.name, reason: letter?.reason }).toEqual({ case: c.name, reason: c.expect });
      expect(letter!.error.message).toMatch(c.errorMatch!);
      expect(letter!.originalSequence).toBe(Number(seqOf.get(c)));
      tally.record(`poison (untyped handler): ${c.name}`, `dead-lettered: ${c.expect}`, { ids: [seqOf.get(c)!] });
    }

    // Invalid payloads never reach the handler and are not retried; handler failures used every attempt.
    const hang = typedLetters.find((l) => l.text() === '{"id":"hang","qty":1}')!;
    expect(hang.attempts).toBe(3);
    expect(typedLetters.filter((l) => l.reason === 'invalid-payload').every((l) => l.attempts === 1)).toBe(true);
    expect(handledTyped.has('smuggled')).toBe(false);
    expect(handledTyped.has('deep')).toBe(false);
    expect(handledTyped.has('big-bad')).toBe(false);
    expect(events.filter((e) => e.outcome === 'failed' && e.error instanceof HandlerTimeoutError)).toHaveLength(3);

    // Handled by design, each exactly once, and no prototype was touched.
    for (const c of typedHandledByDesign) {
      expect({ case: c.name, calls: handledTyped.get(idOf(c)) }).toEqual({ case: c.name, calls: 1 });
      tally.record(`poison: ${c.name}`, 'handled (documented)', { ids: [seqOf.get(c)!] });
    }
    const proto = typedInstances.find((o) => o.id === 'proto')!;
    expect(proto).toBeInstanceOf(Order);
    expect(Object.getPrototypeOf(proto)).toBe(Order.prototype);
    expect(Object.keys(proto).sort()).toEqual(['id', 'qty']);
    expectNoPollution();
    expect((Order.prototype as unknown as Record<string, unknown>).polluted).toBeUndefined();

    const shapes = untypedSeen.map((s) => s.marker).sort();
    expect(shapes).toEqual(untypedHandled.map((c) => c.shape).sort());
    for (const c of untypedHandled) {
      tally.record(`poison (untyped handler): ${c.name}`, `handled as ${c.shape} (documented)`, { ids: [seqOf.get(c)!] });
    }
    // The untyped handler sees __proto__ as an own key of a plain object: inert unless merged unsafely.
    const protoPayload = untypedSeen.find((s) => s.marker.startsWith('object:'))!.payload as object;
    expect(Object.getPrototypeOf(protoPayload)).toBe(Object.prototype);
    expectNoPollution();

    // Every good message handled exactly once.
    const duplicates = goodIds.reduce((n, id) => n + (handledTyped.get(id)! - 1), 0);
    expect(duplicates).toBe(0);
    // Nothing published went missing: every input was handled or dead-lettered, none twice.
    expect(tally.unexpected()).toEqual([]);
    expect(tally.lost()).toEqual([]);
    expect(tally.duplicates()).toEqual([]);
    tally.record('poison: good messages interleaved', 'all handled', { ids: goodSeqs, measured: `${goodSeqs.length} good and ${seqOf.size} hostile inputs settled in ${elapsedMs} ms` });

    // The process never crashed and nothing slipped out as an unhandled rejection.
    expect(crashes).toEqual([]);
    expect(app.logger.find('unexpected dispatch failure')).toEqual([]);
    expect(app.logger.find('consumer stopped')).toEqual([]);
  });

  it('dead-letters a message too large to copy with its headers, and redrives it from the original stream', async () => {
    const stream = uniqueName('EDGE');
    const dlqStream = uniqueName('EDGE_DLQ');
    await createStream(client.jsm, stream, [`${stream}.>`]);
    const subject = `${stream}.orders`;
    let calls = 0;
    const tally = new Tally();
    @Injectable()
    class Orders {
      @OnEvent(subject, { durable: 'edge', dlq: { stream: dlqStream, subject: `${dlqStream}.edge` } })
      async handle(_order: Order, ctx: EventContext): Promise<void> {
        calls++;
        tally.handle(String(ctx.sequence));
      }
    }
    const app = await apps.start({ servers: server.url }, [Orders]);
    // Fits on its own (with the publisher's msg-id header), not with ~500 bytes of dead-letter
    // headers next to it; a redrive adds fewer than that, so it can go back.
    const data = json({ id: 'edge-bad', qty: 'many', pad: 'x'.repeat(MAX_PAYLOAD - 400) });
    const published = await app.publisher.publish(subject, data);
    tally.confirmPublished(String(published.seq));
    const [letter] = await lettersFor(app, dlqStream, `${dlqStream}.edge`, 1);
    tally.deadLetter(String(letter.originalSequence));
    expect(letter.reason).toBe('invalid-payload');
    expect(letter.payloadOmittedBytes).toBe(data.length);
    expect(letter.data).toHaveLength(0);
    expect(letter.originalSequence).toBe(published.seq);
    expect(letter.error.message).toMatch(/qty/);
    await waitFor(async () => (await client.jsm.consumers.info(stream, 'edge')).num_ack_pending === 0, {
      timeoutMs: 10_000,
      message: 'original settled',
    });
    // The bytes are still in the source stream, and redrive reads them from there.
    const service = app.inner.app.get(DeadLetterService);
    const redriven = await service.redrive(letter.seq, dlqStream);
    const back = await client.jsm.streams.getMessage(stream, { seq: redriven.seq });
    expect(Buffer.from(back!.data).equals(Buffer.from(data))).toBe(true);
    // Still invalid, so it is dead-lettered again: one letter, redrive count 1.
    let again: DeadLetter[] = [];
    await waitFor(async () => (again = await service.list({ stream: dlqStream })).length === 1 && again[0].redriveCount === 1, {
      timeoutMs: 15_000,
      intervalMs: 250,
      message: 'the redriven message dead-lettered again',
    });
    expect(again[0].payloadOmittedBytes).toBe(data.length);
    expect(calls).toBe(0);
    expect(crashes).toEqual([]);
    expect(tally.lost()).toEqual([]);
    tally.record('poison: invalid payload too large to copy with DLQ headers', 'dead-lettered: invalid-payload (body omitted, redrive reads original)', { ids: [String(published.seq)] });

    // Once the original is gone too, redrive says so instead of sending an empty message.
    await client.jsm.streams.purge(stream);
    await expect(service.redrive(again[0].seq, dlqStream)).rejects.toThrow(/has no payload .* is gone; it cannot be redriven/);
  });
});

function idOf(c: PoisonCase): string {
  return (JSON.parse(new TextDecoder().decode(c.data)) as { id: string }).id;
}

function describeShape(payload: unknown): string {
  if (payload === null) return 'null';
  if (payload === undefined) return 'undefined';
  if (Array.isArray(payload)) return 'array';
  if (typeof payload === 'object') return `object:${Object.keys(payload).sort().join(',')}`;
  return typeof payload;
}
