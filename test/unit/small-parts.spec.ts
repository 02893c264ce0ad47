import { redactServer, redactText } from '../../lib/connection/redact.js';
import { ConcurrencyGate } from '../../lib/consumer/concurrency-gate.js';
import { diffConfig } from '../../lib/provisioning/config-diff.js';
import { decodeJson, encodePayload } from '../../lib/serialization/codec.js';
import { PayloadEncodingError, PayloadValidationError } from '../../lib/index.js';
import { deliveryCountOf } from '../../lib/context/delivery-count.js';
import type { JsMsg } from '@nats-io/jetstream';
import { parseBytea } from '../../lib/database/parse-bytea.js';

describe('redaction', () => {
  it('strips credentials from server URLs and from free text', () => {
    expect(redactServer('nats://user:secret@host:4222')).toBe('nats://***@host:4222');
    expect(redactServer('tls://tok@host')).toBe('tls://***@host');
    expect(redactServer('host:4222')).toBe('host:4222');
    expect(redactText('failed for nats://u:p@h:1 and tls://t@h2')).toBe('failed for nats://***@h:1 and tls://***@h2');
  });
});

describe('ConcurrencyGate', () => {
  it('admits up to the limit and hands a released slot to the next waiter', async () => {
    const gate = new ConcurrencyGate(2);
    expect(gate.acquire()).toBeUndefined();
    expect(gate.acquire()).toBeUndefined();
    const third = gate.acquire();
    expect(third).toBeInstanceOf(Promise);
    let admitted = false;
    void third!.then(() => (admitted = true));
    await Promise.resolve();
    expect(admitted).toBe(false);
    gate.release();
    await third;
    expect(admitted).toBe(true);
    expect(gate.inFlight).toBe(2);
  });

  it('open() releases every waiter so a stopping loop cannot hang', async () => {
    const gate = new ConcurrencyGate(1);
    gate.acquire();
    const waiters = [gate.acquire(), gate.acquire()];
    gate.open();
    await Promise.all(waiters);
    expect(gate.acquire()).toBeUndefined();
  });
});

describe('diffConfig', () => {
  it('compares only what the caller set; lists are sets; bigints equal numbers', () => {
    expect(diffConfig({ subjects: ['b', 'a'], max_age: 10 }, { subjects: ['a', 'b'], max_age: 10n, extra: 1 })).toEqual([]);
    expect(diffConfig({ subjects: ['a', 'c'] }, { subjects: ['a', 'b'] })).toEqual(['subjects']);
    expect(diffConfig({ storage: 'memory', name: 'X' }, { storage: 'file', name: 'Y' }, ['name'])).toEqual(['storage']);
  });
});

describe('codec', () => {
  it('JSON by default, bytes untouched, undefined as an empty body', () => {
    expect(new TextDecoder().decode(encodePayload({ a: 1 }))).toBe('{"a":1}');
    const bytes = new Uint8Array([0xff, 0x00]);
    expect(encodePayload(bytes)).toBe(bytes);
    expect(encodePayload(undefined).length).toBe(0);
    expect(decodeJson(new Uint8Array(0))).toBeUndefined();
  });

  it('fails clearly on what JSON cannot carry', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => encodePayload(circular)).toThrow(PayloadEncodingError);
    expect(() => encodePayload(10n)).toThrow(PayloadEncodingError);
    expect(() => encodePayload(() => 1)).toThrow(/cannot be encoded as JSON/);
  });

  it('rejects invalid UTF-8 and invalid JSON as validation errors', () => {
    expect(() => decodeJson(new Uint8Array([0xc3, 0x28]))).toThrow(PayloadValidationError);
    expect(() => decodeJson(new TextEncoder().encode('{nope'))).toThrow(/not valid JSON/);
  });
});

describe('deliveryCountOf', () => {
  // A stand-in with only what the function reads; `info` is the client's parse, consulted only
  // for subjects the fast read does not recognise.
  const msg = (reply: string) =>
    ({
      reply,
      get info(): { deliveryCount: number } {
        throw new Error(`fell back to msg.info for ${reply}`);
      },
    }) as unknown as JsMsg;

  it('reads the count from both forms of the ack subject', () => {
    expect(deliveryCountOf(msg('$JS.ACK._.AH.ORDERS.worker.3.120.7.1700000000000000000.5.x1y2'))).toBe(3);
    expect(deliveryCountOf(msg('$JS.ACK.hub.AH.ORDERS.worker.12.120.7.1700000000000000000.0'))).toBe(12);
    expect(deliveryCountOf(msg('$JS.ACK.ORDERS.worker.2.120.7.1700000000000000000.5'))).toBe(2);
  });

  it("leaves anything else to the client's parse, and its error", () => {
    expect(() => deliveryCountOf(msg('_INBOX.abc'))).toThrow('fell back to msg.info for _INBOX.abc');
    expect(() => deliveryCountOf(msg('$JS.ACK.a.b.c.d.e.f.g.h'))).toThrow('fell back');
    expect(() => deliveryCountOf(msg('$JS.ACK.a.b.c.d.e.f.g.h.i'))).toThrow('fell back');
    expect(() => deliveryCountOf(msg('$JS.ACK._.AH.ORDERS.worker.x.120.7.1.5.r'))).toThrow('fell back');
  });
});

describe('parseBytea (the PGlite adapter\'s bytea parser)', () => {
  it('reads the hex form and the escape form to the same bytes', () => {
    const bytes = Uint8Array.from([0, 1, 0x5c, 0x27, 0x41, 0x7f, 0x80, 0xff]);
    expect(parseBytea('\\x00015c27417f80ff')).toEqual(bytes);
    expect(parseBytea('\\000\\001\\\\\'A\\177\\200\\377')).toEqual(bytes);
    expect(parseBytea('\\x')).toEqual(new Uint8Array(0));
  });
});
