import { modulePublisher } from '../contenders/module.js';
import { peerPublisher } from '../contenders/peer.js';
import { rawPublishPipelined, rawPublishSequential } from '../contenders/raw.js';
import { tunedPublishPipelined, tunedPublisher } from '../contenders/raw-tuned.js';
import { addNote, addRow, ratio, times } from '../report.js';
import { N_PUBLISH, PAYLOAD, PAYLOAD_BYTES, PUBLISH_WINDOW, enabled, msgPerSec, rounds, uniqueName, type BenchContext } from '../support.js';

/**
 * Publishing `n` 128-byte events to a stream, awaiting each ack (sequential) or with
 * PUBLISH_WINDOW acks outstanding (pipelined). Raw sends pre-encoded bytes; the module and the
 * peer take the object and encode it as JSON, as applications call them.
 */
export async function publishWorkload(ctx: BenchContext): Promise<void> {
  const n = N_PUBLISH;
  const mod = enabled('module') ? await modulePublisher(ctx.url) : undefined;
  const peer = enabled('peer') ? await peerPublisher(ctx.url) : undefined;
  const tuned = enabled('tuned') ? await tunedPublisher(ctx.url) : undefined;
  const round = (fn: (subject: string) => Promise<unknown>) => async () => {
    const stream = uniqueName('P');
    await ctx.jsm.streams.add({ name: stream, subjects: [`${stream}.x`] });
    const t0 = performance.now();
    await fn(`${stream}.x`);
    const ms = performance.now() - t0;
    await ctx.jsm.streams.delete(stream);
    return msgPerSec(n, ms);
  };
  const contenders: Record<string, () => Promise<number>> = {};
  if (tuned) {
    contenders['tuned sequential'] = round((s) => rawPublishSequential({ ...ctx, js: tuned.js }, s, n, PAYLOAD_BYTES));
    contenders['tuned pipelined'] = round((s) => tunedPublishPipelined(tuned.js, s, n, PAYLOAD_BYTES));
    contenders['tuned pipelined, JSON + msg-id'] = round((s) => tunedPublishPipelined(tuned.js, s, n, PAYLOAD_BYTES, { payload: PAYLOAD }));
  }
  if (enabled('raw')) {
    contenders['raw sequential'] = round((s) => rawPublishSequential(ctx, s, n, PAYLOAD_BYTES));
    contenders['raw pipelined'] = round((s) => rawPublishPipelined(ctx, s, n, PAYLOAD_BYTES));
  }
  if (mod) {
    const { publisher } = mod;
    contenders['publish() sequential'] = round(async (s) => {
      for (let i = 0; i < n; i++) await publisher.publish(s, PAYLOAD);
    });
    contenders['publish() pipelined'] = round(async (s) => {
      const window: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) {
        window.push(publisher.publish(s, PAYLOAD));
        if (window.length === PUBLISH_WINDOW) await Promise.all(window.splice(0));
      }
      await Promise.all(window);
    });
    contenders.publishBatch = round((s) => publisher.publishBatch(Array.from({ length: n }, () => ({ subject: s, payload: PAYLOAD })), { window: PUBLISH_WINDOW }));
  }
  if (peer) {
    contenders['peer sequential'] = round((s) => peer.sequential(s, n, PAYLOAD));
    contenders['peer pipelined'] = round((s) => peer.pipelined(s, n, PAYLOAD));
  }
  try {
    const m = await rounds('publish', contenders, (v) => `${Math.round(v)} msg/s`);
    const row = (workload: string, kind: 'sequential' | 'pipelined', module: string, target?: number) => {
      const vsTuned = ratio(m[module], m[`tuned ${kind}`]);
      addRow({
        workload,
        unit: 'msg/s',
        tuned: m[`tuned ${kind}`],
        raw: m[`raw ${kind}`],
        module: m[module],
        peer: m[`peer ${kind}`],
        vsTuned: times(vsTuned),
        vsRaw: times(ratio(m[module], m[`raw ${kind}`])),
        vsPeer: times(ratio(m[module], m[`peer ${kind}`])),
        target: target === undefined ? undefined : `>= ${target}x tuned`,
        met: target === undefined || vsTuned === undefined ? undefined : vsTuned >= target,
      });
    };
    row(`publish ${n / 1000}k sequential`, 'sequential', 'publish() sequential');
    row(`publish ${n / 1000}k pipelined, publish() x${PUBLISH_WINDOW}`, 'pipelined', 'publish() pipelined', 0.95);
    row(`publish ${n / 1000}k pipelined, publishBatch`, 'pipelined', 'publishBatch', 0.95);
    const byHand = m['tuned pipelined, JSON + msg-id'];
    if (byHand !== undefined) {
      const share = (k: string) => times(ratio(m[k], byHand)) ?? '-';
      addNote(
        `publish: raw-tuned doing what the publisher does (JSON-encode each object, a fresh Nats-Msg-Id the stream deduplicates) makes ${Math.round(byHand).toLocaleString('en')} msg/s, ${times(ratio(byHand, m['tuned pipelined']))} of raw-tuned sending pre-encoded bytes without an id; publish() x${PUBLISH_WINDOW} is ${share('publish() pipelined')} of it, publishBatch ${share('publishBatch')}.`,
      );
    }
  } finally {
    await mod?.close();
    await peer?.close();
    await tuned?.close();
  }
}
