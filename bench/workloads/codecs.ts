import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack';
import { jsonCodec, msgpackCodec } from '../../lib/index.js';
import { addNote, addRow, ratio, times } from '../report.js';
import { rounds, type BenchContext } from '../support.js';

const N = Number(process.env.BENCH_CODEC ?? 100_000);

/** A 1 KB order as JSON: strings, numbers, nested objects and an array, as events usually are. */
const ORDER = {
  orderId: 'ord-0001234567',
  customer: { id: 'cus-42', name: 'Ada Lovelace', email: 'ada@example.com', tier: 'gold' },
  items: Array.from({ length: 8 }, (_, i) => ({ sku: `SKU-${1000 + i}`, qty: i + 1, price: 9.99 + i, note: 'gift wrap, no invoice inside' })),
  total: 123.45,
  currency: 'EUR',
  placedAt: '2026-12-02T15:00:00.000Z',
  tags: ['priority', 'web', 'eu', 'returning-customer'],
  shipping: { method: 'express', address: { street: '12 Analytical Engine Road', city: 'London', postcode: 'NW1 2DB', country: 'GB' } },
};

/**
 * The codecs on their own, no server: encode and decode of a 1 KB object with the module's JSON
 * codec, its msgpack codec (msgpackr) and `@msgpack/msgpack` (the alternative the msgpack codec
 * was measured against), in the same process and rounds. Ops/s, higher is better.
 */
export async function codecsWorkload(_ctx: BenchContext): Promise<void> {
  await msgpackCodec.prepare!();
  const bytes = { json: jsonCodec.encode(ORDER), msgpackr: msgpackCodec.encode(ORDER), '@msgpack/msgpack': msgpackEncode(ORDER) };
  const timed = (work: () => void) => async () => {
    const started = performance.now();
    for (let i = 0; i < N; i++) work();
    return (N / (performance.now() - started)) * 1000;
  };
  let sink: unknown;
  const encode = await rounds('codec encode', {
    json: timed(() => (sink = jsonCodec.encode(ORDER))),
    msgpackr: timed(() => (sink = msgpackCodec.encode(ORDER))),
    '@msgpack/msgpack': timed(() => (sink = msgpackEncode(ORDER))),
  }, (v) => `${Math.round(v)} ops/s`);
  const decode = await rounds('codec decode', {
    json: timed(() => (sink = jsonCodec.decode(bytes.json))),
    msgpackr: timed(() => (sink = msgpackCodec.decode(bytes.msgpackr))),
    '@msgpack/msgpack': timed(() => (sink = msgpackDecode(bytes['@msgpack/msgpack']))),
  }, (v) => `${Math.round(v)} ops/s`);
  void sink;
  for (const [what, m] of [['encode', encode], ['decode', decode]] as const) {
    addRow({
      workload: `codec ${what}, ${bytes.json.length}-byte JSON object`,
      unit: 'ops/s',
      raw: m.json,
      module: m.msgpackr,
      vsRaw: times(ratio(m.msgpackr, m.json)),
      note: `raw column: the JSON codec; module column: msgpackCodec (msgpackr, ${bytes.msgpackr.length} bytes); @msgpack/msgpack: ${Math.round(m['@msgpack/msgpack']).toLocaleString('en')} ops/s (${times(ratio(m['@msgpack/msgpack'], m.msgpackr))} of msgpackr)`,
    });
  }
  addNote('codec rows: no server, one process, the same object each call; the figures are per call of encode or decode.');
}
