import { modulePublisher } from '../contenders/module.js';
import { peerPublisher } from '../contenders/peer.js';
import { rawPublishPipelined, rawPublishSequential } from '../contenders/raw.js';
import { addRow, ratio, times } from '../report.js';
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
    const row = (workload: string, raw: string, module: string, peerKey: string, target?: number) => {
      const vsRaw = ratio(m[module], m[raw]);
      addRow({
        workload,
        unit: 'msg/s',
        raw: m[raw],
        module: m[module],
        peer: m[peerKey],
        vsRaw: times(vsRaw),
        vsPeer: times(ratio(m[module], m[peerKey])),
        target: target === undefined ? undefined : `>= ${target}x raw`,
        met: target === undefined || vsRaw === undefined ? undefined : vsRaw >= target,
      });
    };
    row(`publish ${n / 1000}k sequential`, 'raw sequential', 'publish() sequential', 'peer sequential');
    row(`publish ${n / 1000}k pipelined, publish() x${PUBLISH_WINDOW}`, 'raw pipelined', 'publish() pipelined', 'peer pipelined', 0.95);
    row(`publish ${n / 1000}k pipelined, publishBatch`, 'raw pipelined', 'publishBatch', 'peer pipelined', 0.95);
  } finally {
    await mod?.close();
    await peer?.close();
  }
}
