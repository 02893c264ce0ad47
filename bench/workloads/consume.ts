import { moduleConsumer, type PayloadKind } from '../contenders/module.js';
import { PEER_CONCURRENCY_NOTE, peerConsumer } from '../contenders/peer.js';
import { rawConsume } from '../contenders/raw.js';
import { tunedConsume, type TunedHandler } from '../contenders/raw-tuned.js';
import { addNote, addRow, ratio, times } from '../report.js';
import { N_CONSUME, enabled, msgPerSec, prefill, rounds, uniqueName, type BenchContext } from '../support.js';

// As the module's codec decodes: invalid UTF-8 fails instead of becoming U+FFFD.
const decoder = new TextDecoder('utf-8', { fatal: true });
/** The tuned floor's handlers: one that ignores the bytes, one that parses them as the module does. */
const binaryHandler: TunedHandler = async () => undefined;
const jsonHandler: TunedHandler = async (data) => void JSON.parse(decoder.decode(data));
/** What a handler does when it must not be sync: the docs example's c=64 loop runs it. */
const noop = async (): Promise<void> => undefined;

const CONCURRENCIES = [1, 64] as const;

/**
 * Consume + ack of a pre-filled stream, handlers that do nothing with the payload: the
 * per-message overhead, split by payload kind so the cost of JSON and of a validated class shows
 * on its own row.
 */
export async function consumeWorkload(ctx: BenchContext): Promise<void> {
  const n = N_CONSUME;
  const contenders: Record<string, () => Promise<number>> = {};
  const round = (run: (stream: string, subject: string) => Promise<number>) => async () => {
    const stream = uniqueName('C');
    const subject = `${stream}.x`;
    await prefill(ctx, stream, subject, n);
    const ms = await run(stream, subject);
    await ctx.jsm.streams.delete(stream);
    return msgPerSec(n, ms);
  };
  for (const c of CONCURRENCIES) {
    if (enabled('tuned')) {
      contenders[`tuned binary c=${c}`] = round(async (stream) => (await tunedConsume(ctx.url, stream, n, c, binaryHandler)).ms);
      contenders[`tuned json c=${c}`] = round(async (stream) => (await tunedConsume(ctx.url, stream, n, c, jsonHandler)).ms);
    }
    // The docs example at c=64 runs a handler promise per message, up to 64 at once.
    if (enabled('raw')) contenders[`raw c=${c}`] = round((stream) => rawConsume(ctx, stream, n, c, c === 1 ? undefined : noop));
    if (enabled('module')) {
      const kinds: PayloadKind[] = c === 1 ? ['binary', 'json', 'class', 'zod'] : ['binary', 'json'];
      for (const kind of kinds) {
        contenders[`module ${kind} c=${c}`] = round(async (_stream, subject) => {
          const { app, elapsed } = await moduleConsumer(ctx.url, subject, n, { durable: 'bench', concurrency: c, dlq: false }, undefined, kind);
          const ms = await elapsed;
          await app.close();
          return ms;
        });
      }
    }
  }
  if (enabled('peer')) {
    contenders.peer = round(async (_stream, subject) => {
      const { app, elapsed } = await peerConsumer(ctx.url, subject, n);
      const ms = await elapsed;
      await app.close();
      return ms;
    });
  }
  const m = await rounds('consume', contenders, (v) => `${Math.round(v)} msg/s`);
  for (const kind of ['binary', 'json'] as const) {
    for (const c of CONCURRENCIES) {
      const module = m[`module ${kind} c=${c}`];
      const vsTuned = ratio(module, m[`tuned ${kind} c=${c}`]);
      addRow({
        workload: `consume + ack ${n / 1000}k, ${kind === 'binary' ? 'Uint8Array' : 'JSON'}, c=${c}`,
        unit: 'msg/s',
        tuned: m[`tuned ${kind} c=${c}`],
        raw: m[`raw c=${c}`],
        module,
        peer: m.peer,
        vsTuned: times(vsTuned),
        vsRaw: times(ratio(module, m[`raw c=${c}`])),
        vsPeer: times(ratio(module, m.peer)),
        target: '>= 0.9x tuned',
        met: vsTuned === undefined ? undefined : vsTuned >= 0.9,
      });
    }
  }
  // Rows of a validating handler at c=1, against the floors of the JSON rows.
  const validatingRow = (label: string, module: number | undefined, note: string | undefined) =>
    addRow({
      workload: `consume + ack ${n / 1000}k, ${label}, c=1`,
      unit: 'msg/s',
      tuned: m['tuned json c=1'],
      raw: m['raw c=1'],
      module,
      peer: m.peer,
      vsTuned: times(ratio(module, m['tuned json c=1'])),
      vsRaw: times(ratio(module, m['raw c=1'])),
      vsPeer: times(ratio(module, m.peer)),
      note,
    });
  const validated = m['module class c=1'];
  validatingRow(
    'validated class',
    validated,
    validated === undefined || m['module json c=1'] === undefined
      ? undefined
      : `class-transformer + class-validator on every message: ${times(ratio(validated, m['module json c=1']))} of the same handler taking a plain object (${Math.round(m['module json c=1']).toLocaleString('en')} msg/s)`,
  );
  const zod = m['module zod c=1'];
  validatingRow(
    'Zod 4 schema',
    zod,
    zod === undefined || validated === undefined
      ? undefined
      : `{ schema } (Standard Schema) on every message, same constraints as the validated class: ${times(ratio(zod, validated))} of the class-validator row in this run`,
  );
  addNote('raw-tuned: its own noAsyncTraces connection, acks written once per event-loop turn, the module\'s pull batch; its JSON rows parse each payload as the module does. raw: the docs example (one ack per write, a batch of 32, the shared connection); its JSON rows are the same run, it never parses.');
  if (m.peer !== undefined) addNote(`peer: ${PEER_CONCURRENCY_NOTE}, so every consume row shows its one mode (it parses JSON).`);
}
