import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { DeadLetterService, OnEvent, TerminalError, type EventContext } from '../../lib/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { createStream, freshStream, waitForDeadLetters } from './kit.js';
import { workerScenario } from '../reliability/child-app.js';
import { expectPartitionedGuarantees, publishKeyed, runPartitioned } from '../reliability/partitioned-scenario.js';
import { scale } from '../reliability/report.js';

const KEYS = 1_000;
// The full 20 000 runs under SOAK=1 (npm run soak:partitions); the default suite runs 6 000.
const MESSAGES = scale(6_000, 20_000);
const CONCURRENCY = 4;
const MEMBER_TTL_MS = 3_000;
const PINNED_TTL_MS = 3_000;
const ACK_WAIT_MS = 2_000;

/**
 * `partitions`: a partitioned consumer group. Messages are split by key into partitions on the
 * server; each partition is consumed by one instance at a time in order, and the live instances
 * share the partitions (nats-server 2.11+).
 */
describe('partitioned consumer groups', () => {
  const { apps, workers, client } = workerScenario();
  const serverVersion = () => client().nc.info!.version;
  const supported = () => {
    const [major, minor] = serverVersion().split('.').map(Number);
    return major > 2 || (major === 2 && minor >= 11);
  };

  function handler(subject: string, options: Parameters<typeof OnEvent>[1], seen: Array<{ subject: string; partition: number | undefined }> = []) {
    @Injectable()
    class Partitioned {
      @OnEvent(subject, options)
      handle(_payload: unknown, ctx: EventContext) {
        seen.push({ subject: ctx.subject, partition: ctx.partition });
      }
    }
    return Partitioned;
  }

  it('on a server older than 2.11, fails at startup naming the version it needs', async () => {
    const stream = uniqueName('PTOLD');
    await createStream(client().jsm, stream, [`${stream}.>`]);
    const start = apps.start({ servers: testNatsUrl() }, [handler(`${stream}.*.evt`, { durable: uniqueName('old'), partitions: { count: 4 } })]);
    if (supported()) {
      await (await start).close();
      return;
    }
    await expect(start).rejects.toThrow(`with partitions: partitioned consumer groups (pinned_client priority groups) needs nats-server 2.11.0 or newer; the connected server is ${serverVersion()}`);
    // Refused before anything was made: no group stream.
    await expect(client().jsm.streams.info(`${stream}-old`)).rejects.toThrow();
  });

  it('the handler sees the published subject and its partition; publishers and the stream stay as they are', async () => {
    if (!supported()) return; // asserted by the startup-error test above on this server
    const stream = uniqueName('PTSUBJ');
    const durable = uniqueName('subj');
    await createStream(client().jsm, stream, [`${stream}.>`]);
    const seen: Array<{ subject: string; partition: number | undefined }> = [];
    await apps.start({ servers: testNatsUrl() }, [handler(`${stream}.*.evt`, { durable, partitions: { count: 3, key: 1 } }, seen)]);
    for (const key of ['a', 'b', 'c', 'd', 'a']) await client().js.publish(`${stream}.${key}.evt`, JSON.stringify({ key }));
    await waitFor(() => seen.length === 5, { timeoutMs: 15_000, message: () => `5 handled, got ${seen.length}` });
    expect(new Set(seen.map((s) => s.subject))).toEqual(new Set(['a', 'b', 'c', 'd'].map((k) => `${stream}.${k}.evt`)));
    // One key, one partition.
    const partitionOf = (k: string) => new Set(seen.filter((s) => s.subject === `${stream}.${k}.evt`).map((s) => s.partition));
    expect(partitionOf('a').size).toBe(1);
    expect(seen.every((s) => s.partition !== undefined && s.partition >= 0 && s.partition < 3)).toBe(true);
    const original = await client().jsm.streams.info(stream);
    expect(original.state.messages).toBe(5);
    expect(original.config.subject_transform).toBeUndefined();
    // Work-queue copy: emptied as the partitions ack.
    await waitFor(async () => (await client().jsm.streams.info(`${stream}-${durable}`)).state.messages === 0, { timeoutMs: 10_000, message: 'group stream drained' });
  });

  it('a dead letter of a sourced message is stored with the published subject, and its redrive reaches the group again', async () => {
    if (!supported()) return;
    const { stream, subject, dlqStream, dlq } = await freshStream(client().jsm, 'PTDLQ');
    const durable = uniqueName('dlq');
    let broken = true;
    const handled: string[] = [];
    @Injectable()
    class Partitioned {
      @OnEvent(`${stream}.*.evt`, { durable, partitions: { count: 3, key: 1 }, dlq })
      handle(payload: { id: string }) {
        if (broken) throw new TerminalError('bug in handler');
        handled.push(payload.id);
      }
    }
    const app = await apps.start({ servers: testNatsUrl() }, [Partitioned]);
    await client().js.publish(subject('k1.evt'), JSON.stringify({ id: 'p-1' }), { msgID: 'p-1' });
    const [letter] = await waitForDeadLetters(app, dlqStream, 1);
    expect(letter.originalSubject).toBe(subject('k1.evt'));
    broken = false;
    await app.inner.app.get(DeadLetterService).redrive(letter.seq, dlqStream);
    await waitFor(() => handled.includes('p-1'), { timeoutMs: 15_000, message: 'the redriven message handled by the group' });
  });

  it('refuses at startup a group stream that exists with another partitioning, naming both', async () => {
    if (!supported()) return;
    const stream = uniqueName('PTDRIFT');
    const durable = uniqueName('drift');
    await createStream(client().jsm, stream, [`${stream}.>`]);
    const first = await apps.start({ servers: testNatsUrl() }, [handler(`${stream}.*.evt`, { durable, partitions: { count: 4 } })]);
    await first.close();
    await expect(apps.start({ servers: testNatsUrl() }, [handler(`${stream}.*.evt`, { durable, partitions: { count: 8 } })])).rejects.toThrow(
      /the group's stream "PTDRIFT[^"]*" exists with the partitioning .*Partition\(4,1\).*asks for .*Partition\(8,1\).*partition count and key are fixed/,
    );
  });

  it('refuses a key wildcard the subject does not have, before creating anything', async () => {
    if (!supported()) return;
    const stream = uniqueName('PTKEY');
    const durable = uniqueName('key');
    await createStream(client().jsm, stream, [`${stream}.>`]);
    await expect(apps.start({ servers: testNatsUrl() }, [handler(`${stream}.*.evt`, { durable, partitions: { count: 4, key: 2 } })])).rejects.toThrow(
      `partitions.key 2 is out of range: "${stream}.*.evt" has 1 * wildcard(s), numbered from 1`,
    );
    await expect(apps.start({ servers: testNatsUrl() }, [handler(`${stream}.evt.>`, { durable, partitions: { count: 4 } })])).rejects.toThrow('has none (a trailing > cannot be a key)');
    await expect(client().jsm.streams.info(`${stream}-${durable}`)).rejects.toThrow();
  });

  it('one instance runs at most `concurrency` calls at once across all its partitions', async () => {
    if (!supported()) return;
    const stream = uniqueName('PTPOOL');
    await createStream(client().jsm, stream, [`${stream}.>`]);
    let running = 0;
    let peak = 0;
    let handled = 0;
    @Injectable()
    class Pooled {
      @OnEvent(`${stream}.*.evt`, { durable: uniqueName('pool'), concurrency: 3, partitions: { count: 12, key: 1 } })
      async handle() {
        peak = Math.max(peak, ++running);
        await new Promise((resolve) => setTimeout(resolve, 10));
        running--;
        handled++;
      }
    }
    await apps.start({ servers: testNatsUrl() }, [Pooled]);
    await publishKeyed(client(), stream, 100, 600);
    await waitFor(() => handled === 600, { timeoutMs: 30_000, message: () => `600 handled, got ${handled}` });
    // 12 partitions each with a message ready, yet never more than the pool's 3 calls.
    expect(peak).toBe(3);
  });

  it('a graceful stop hands its partitions over: every key in order, nothing handled twice', async () => {
    if (!supported()) return;
    const stream = uniqueName('PTSTOP');
    const durable = uniqueName('stop');
    await createStream(client().jsm, stream, [`${stream}.>`]);
    const COUNT = 1_200;
    const seen: Array<{ app: string; key: string; n: number }> = [];
    const instance = (app: string) => {
      @Injectable()
      class Keyed {
        @OnEvent(`${stream}.*.evt`, { durable, concurrency: 2, ackWaitMs: ACK_WAIT_MS, partitions: { count: 6, key: 1, memberTtlMs: MEMBER_TTL_MS, pinnedTtlMs: PINNED_TTL_MS } })
        async handle(payload: { id: string }) {
          const [key, n] = payload.id.split('/');
          seen.push({ app, key, n: Number(n) });
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      }
      return Keyed;
    };
    const a = await apps.start({ servers: testNatsUrl() }, [instance('A')]);
    await apps.start({ servers: testNatsUrl() }, [instance('B')]);
    await publishKeyed(client(), stream, 60, COUNT);
    await waitFor(() => seen.length >= COUNT / 3 && new Set(seen.map((s) => s.app)).size === 2, { timeoutMs: 30_000, message: () => `a third handled by both, got ${seen.length}` });
    const stoppedAt = Date.now();
    await a.close();
    const closeMs = Date.now() - stoppedAt;
    await waitFor(() => seen.length >= COUNT, { timeoutMs: 30_000, message: () => `all handled, got ${seen.length}` });
    const byKey = new Map<string, number[]>();
    for (const s of seen) byKey.set(s.key, [...(byKey.get(s.key) ?? []), s.n]);
    for (const [key, ns] of byKey) expect({ key, ns }).toEqual({ key, ns: [...ns.keys()] });
    expect(seen).toHaveLength(COUNT);
    console.log(`partitioned graceful stop: close() took ${closeMs} ms; ${seen.filter((s) => s.app === 'B').length} of ${COUNT} handled by the survivor`);
  });

  it(`3 processes, ${KEYS} keys, ${MESSAGES} messages; a fourth joins, then one is SIGKILLed: every key in order, nothing lost, duplicates only at the kill`, async () => {
    if (!supported()) return;
    const stream = uniqueName('PTRUN');
    const durable = uniqueName('run');
    await createStream(client().jsm, stream, [`${stream}.>`]);
    await publishKeyed(client(), stream, KEYS, MESSAGES);
    const outcome = await runPartitioned(
      client(),
      stream,
      durable,
      { keys: KEYS, messages: MESSAGES, partitions: 12, concurrency: CONCURRENCY, servers: () => testNatsUrl(), ackWaitMs: ACK_WAIT_MS, memberTtlMs: MEMBER_TTL_MS, pinnedTtlMs: PINNED_TTL_MS, deadlineMs: scale(90_000, 300_000) },
      workers,
    );
    console.log(`partitioned run (single server): ${JSON.stringify(outcome)}`);
    // A killed instance runs at most `concurrency` calls at once across its partitions: only those
    // can be done and not acked. Nothing else is handled twice, the join's handovers included.
    expectPartitionedGuarantees(outcome, CONCURRENCY);
    await waitFor(async () => (await client().jsm.streams.info(`${stream}-${durable}`)).state.messages === 0, { timeoutMs: 15_000, message: 'every partition acked' });
  }, scale(180_000, 600_000));
});
