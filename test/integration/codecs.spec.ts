// Codecs on the wire: msgpack through a handler, the dead-letter stream, a redrive and the CLI
// with its bytes and content type intact; JSON and msgpack producers on one durable; content
// types nobody can decode dead-lettered with a clear reason. Real server, CLI in its own process.
import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { Injectable } from '@nestjs/common';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { decode as referenceDecode, encode as referenceEncode } from '@msgpack/msgpack';
import { CONTENT_TYPE_HEADER, DeadLetterHeaders, DeadLetterService, EventContext, msgpackCodec, OnEvent, TerminalError, type OnEventOptions } from '../../lib/index.js';
import { recordHandled } from '../../lib/testing/index.js';
import { testNatsUrl, waitFor } from '../harness/index.js';
import { freshStream, sharedServerHooks, waitForDeadLetters } from './kit.js';

const hooks = sharedServerHooks();
const CLI = join(resolve(process.cwd()), 'dist/cli/main.js');

function cli(args: readonly string[]): Promise<string> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NATS_')));
  return new Promise((done, fail) => {
    execFile('node', [CLI, ...args, '--server', testNatsUrl()], { env, timeout: 30_000 }, (err, stdout, stderr) => (err ? fail(new Error(`CLI ${args.join(' ')}: ${stderr}`)) : done(stdout)));
  });
}

interface Order {
  id: string;
  qty: number;
  tags: string[];
}

function recorder(subject: string, options: OnEventOptions, body: (order: Order, ctx: EventContext) => void) {
  @Injectable()
  class CodecHandler {
    @OnEvent(subject, options)
    handle(order: Order, ctx: EventContext) {
      body(order, ctx);
    }
  }
  return CodecHandler;
}

const order: Order = { id: 'o-1', qty: 3, tags: ['rush', 'gift'] };

describe('msgpack codec', () => {
  it('round trip: handler, dead letter (bytes and content type kept), CLI show decoded, CLI redrive back to the handler', async () => {
    const names = await freshStream(hooks.client.jsm, 'CODECMP');
    const subject = names.subject('orders');
    const seen: Order[] = [];
    let failFirst = true;
    const app = await hooks.apps.start({ servers: testNatsUrl(), codec: msgpackCodec }, [
      recorder(subject, { durable: 'mp', dlq: names.dlq }, (o) => {
        if (failFirst) {
          failFirst = false;
          throw new TerminalError('refused once');
        }
        seen.push(o);
      }),
    ]);
    const { seq } = await app.publisher.publish(subject, order);

    // On the wire: msgpack any MessagePack library reads, with its content type.
    const stored = await hooks.client.jsm.streams.getMessage(names.stream, { seq });
    expect(stored!.header.get(CONTENT_TYPE_HEADER)).toBe('application/msgpack');
    expect(referenceDecode(stored!.data)).toEqual(order);

    const [letter] = await waitForDeadLetters(app, names.dlqStream, 1);
    expect(letter.reason).toBe('terminal');
    expect(Buffer.from(letter.data).equals(Buffer.from(stored!.data))).toBe(true);
    expect(letter.headers[CONTENT_TYPE_HEADER]).toEqual(['application/msgpack']);

    const shown = JSON.parse(await cli(['dlq', 'show', String(letter.seq), '--stream', names.dlqStream, '--json'])) as Record<string, unknown>;
    expect(shown.contentType).toBe('application/msgpack');
    expect(JSON.parse(shown.payload as string)).toEqual(order);
    expect(Buffer.from(shown.payloadBase64 as string, 'base64').equals(Buffer.from(stored!.data))).toBe(true);
    const text = await cli(['dlq', 'show', String(letter.seq), '--stream', names.dlqStream]);
    expect(text).toContain(`Payload (application/msgpack, ${stored!.data.length} bytes, shown as JSON):`);
    expect(text).toContain('"tags": [');

    await cli(['dlq', 'redrive', String(letter.seq), '--stream', names.dlqStream]);
    await waitFor(() => seen.length === 1, { timeoutMs: 15_000, message: 'the redriven order handled' });
    expect(seen[0]).toEqual(order);
    const redriven = await hooks.client.jsm.streams.getMessage(names.stream, { last_by_subj: subject });
    expect(redriven!.header.get(CONTENT_TYPE_HEADER)).toBe('application/msgpack');
    expect(redriven!.header.get(DeadLetterHeaders.RedriveCount)).toBe('1');
    expect(Buffer.from(redriven!.data).equals(Buffer.from(stored!.data))).toBe(true);
  });

  it('JSON and msgpack producers on one durable: each message decoded by its content type', async () => {
    const names = await freshStream(hooks.client.jsm, 'CODECMIX');
    const subject = names.subject('orders');
    const seen: Array<{ order: Order; contentType: string | undefined }> = [];
    // The consuming app publishes JSON by default and knows msgpack from the header.
    const app = await hooks.apps.start({ servers: testNatsUrl(), codecs: [msgpackCodec] }, [
      recorder(subject, { durable: 'mixed', dlq: names.dlq, concurrency: 1 }, (o, ctx) => seen.push({ order: o, contentType: ctx.header(CONTENT_TYPE_HEADER) })),
    ]);
    const msgpackProducer = await hooks.apps.start({ servers: testNatsUrl(), codec: msgpackCodec });
    await app.publisher.publish(subject, { ...order, id: 'json' });
    await msgpackProducer.publisher.publish(subject, { ...order, id: 'msgpack-module' });
    await app.publisher.publish(subject, { ...order, id: 'msgpack-per-publish' }, { codec: msgpackCodec });
    // Another service's producer, with another MessagePack library and its own header spelling.
    const h = natsHeaders();
    h.set('content-type', 'application/msgpack');
    await hooks.client.js.publish(subject, referenceEncode({ ...order, id: 'msgpack-foreign' }), { headers: h });

    await waitFor(() => seen.length === 4, { timeoutMs: 15_000, message: 'four orders handled' });
    expect(seen.map((s) => s.order)).toEqual(['json', 'msgpack-module', 'msgpack-per-publish', 'msgpack-foreign'].map((id) => ({ ...order, id })));
    expect(seen.map((s) => s.contentType)).toEqual([undefined, 'application/msgpack', 'application/msgpack', undefined]);
  });

  it('a handler codec decodes header-less msgpack; an unknown content type is dead-lettered as invalid-payload', async () => {
    const names = await freshStream(hooks.client.jsm, 'CODECHDL');
    const subject = names.subject('orders');
    const seen: Order[] = [];
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [recorder(subject, { durable: 'bin', dlq: names.dlq, codec: msgpackCodec }, (o) => seen.push(o))]);
    const handled = recordHandled(app.inner.app);
    await hooks.client.js.publish(subject, referenceEncode(order));
    const h = natsHeaders();
    h.set(CONTENT_TYPE_HEADER, 'application/x-protobuf');
    await hooks.client.js.publish(subject, new Uint8Array([8, 1]), { headers: h });
    await waitFor(() => seen.length === 1, { timeoutMs: 15_000, message: 'the msgpack order handled' });
    expect(seen[0]).toEqual(order);
    const dead = await handled.waitForDeadLetter();
    expect(dead.reason).toBe('invalid-payload');
    const [letter] = await app.inner.app.get(DeadLetterService).list({ stream: names.dlqStream });
    expect(letter.error.message).toMatch(/No codec for content type "application\/x-protobuf" \(known: application\/json, application\/msgpack\)/);
    expect(letter.headers[CONTENT_TYPE_HEADER]).toEqual(['application/x-protobuf']);
  });

  it('a JSON-only handler (headers left unread on its fast path) still names the content type it cannot decode', async () => {
    const names = await freshStream(hooks.client.jsm, 'CODECJSON');
    const subject = names.subject('orders');
    const seen: Order[] = [];
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [recorder(subject, { durable: 'json', dlq: names.dlq }, (o) => seen.push(o))]);
    await app.publisher.publish(subject, order, { codec: msgpackCodec });
    await app.publisher.publish(subject, order);
    const [letter] = await waitForDeadLetters(app, names.dlqStream, 1);
    expect(letter.reason).toBe('invalid-payload');
    expect(letter.error.message).toMatch(/^No codec for content type "application\/msgpack" \(known: application\/json\)/);
    await waitFor(() => seen.length === 1, { timeoutMs: 15_000, message: 'the JSON order handled' });
  });

  it('bytes that are not msgpack are dead-lettered as invalid-payload, not retried', async () => {
    const names = await freshStream(hooks.client.jsm, 'CODECBAD');
    const subject = names.subject('orders');
    const app = await hooks.apps.start({ servers: testNatsUrl(), codec: msgpackCodec }, [recorder(subject, { durable: 'bad', dlq: names.dlq }, () => undefined)]);
    const h = natsHeaders();
    h.set(CONTENT_TYPE_HEADER, 'application/msgpack');
    await hooks.client.js.publish(subject, new Uint8Array([0x92, 0x01]) /* an array of two holding one element */, { headers: h });
    const [letter] = await waitForDeadLetters(app, names.dlqStream, 1);
    expect(letter.reason).toBe('invalid-payload');
    expect(letter.attempts).toBe(1);
    expect(letter.error.message).toMatch(/not valid msgpack \(Unexpected end of MessagePack data\)/);
  });
});
