import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { EventContext, OnEvent } from '../../lib/index.js';
import { testNatsUrl, waitFor } from '../harness/index.js';
import { prefilledStream, workerScenario } from '../reliability/child-app.js';
import { exclusiveKillScenario, indexOf } from '../reliability/exclusive-scenario.js';

const ACK_WAIT_MS = 2_000;
// The default pinned TTL.
const PINNED_TTL_MS = 5_000;

/**
 * `exclusive: true`: one instance of the deployment consumes the durable at a time (the server's
 * pinned_client priority policy, nats-server 2.11+); the others stand by and take over, in order.
 */
describe('exclusive consumer (pinned client)', () => {
  const { apps, workers, client } = workerScenario();
  const serverVersion = () => client().nc.info!.version;
  const pinnedGroupsSupported = () => {
    const [major, minor] = serverVersion().split('.').map(Number);
    return major > 2 || (major === 2 && minor >= 11);
  };

  function instance(name: string, subject: string, durable: string, seen: Array<{ app: string; index: number; at: number }>) {
    @Injectable()
    class Ordered {
      @OnEvent(subject, { durable, exclusive: true, ackWaitMs: ACK_WAIT_MS })
      async handle(payload: { id: string }, _ctx: EventContext) {
        seen.push({ app: name, index: indexOf(payload.id), at: Date.now() });
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    }
    Object.defineProperty(Ordered, 'name', { value: `Ordered${name}` });
    return Ordered;
  }

  it('on a server older than 2.11, fails at startup naming the version it needs', async () => {
    const { subject, durable } = await prefilledStream(client(), 'exold', 1);
    const start = apps.start({ servers: testNatsUrl() }, [instance('A', subject, durable, [])]);
    if (pinnedGroupsSupported()) {
      await (await start).close();
      return;
    }
    await expect(start).rejects.toThrow(`with exclusive: exclusive consumers (pinned_client priority groups) needs nats-server 2.11.0 or newer; the connected server is ${serverVersion()}`);
  });

  it('one instance handles everything in order; stopping it hands over at once, with no gap, duplicate or reordering', async () => {
    if (!pinnedGroupsSupported()) return; // asserted by the startup-error test above on this server
    const COUNT = 600;
    const { stream, subject, durable } = await prefilledStream(client(), 'exstop', COUNT);
    const seen: Array<{ app: string; index: number; at: number }> = [];
    const a = await apps.start({ servers: testNatsUrl() }, [instance('A', subject, durable, seen)]);
    const b = await apps.start({ servers: testNatsUrl() }, [instance('B', subject, durable, seen)]);
    await waitFor(() => seen.length >= 150, { timeoutMs: 15_000, message: () => `150 handled, got ${seen.length}` });
    const first = seen[0].app;
    expect(seen.every((s) => s.app === first)).toBe(true);
    const [active, standby] = first === 'A' ? [a, b] : [b, a];
    const stoppedAt = Date.now();
    await active.close();
    await waitFor(() => seen.length >= COUNT, { timeoutMs: 20_000, message: () => `all handled, got ${seen.length}` });
    const takeoverMs = seen.find((s) => s.app !== first)!.at - stoppedAt;
    expect(seen.map((s) => s.index)).toEqual([...Array(COUNT).keys()]);
    // Released, not timed out: the standby does not wait out the pinned TTL.
    expect(takeoverMs).toBeLessThan(PINNED_TTL_MS - 1_000);
    expect(standby.logger.lines.some((l) => l.message.includes('now the active (pinned) consumer'))).toBe(true);
    await waitFor(async () => (await client().jsm.consumers.info(stream, durable)).num_ack_pending === 0, { timeoutMs: 10_000, message: 'all acked' });
    console.log(`exclusive graceful handover: ${takeoverMs} ms from close() to the standby's first message`);
  });

  it('3 instances, the pinned one SIGKILLed mid-stream: a survivor takes over within the pinned TTL; handled sequence strictly increasing, no gaps', async () => {
    if (!pinnedGroupsSupported()) return; // asserted by the startup-error test above on this server
    const COUNT = 800;
    const { stream, subject, durable } = await prefilledStream(client(), 'exkill', COUNT);
    const { takeoverMs, duplicates } = await exclusiveKillScenario(client(), workers, {
      stream,
      subject,
      durable,
      count: COUNT,
      servers: () => testNatsUrl(),
      ackWaitMs: ACK_WAIT_MS,
      waitMs: 30_000,
    });
    // The pin moves after the TTL from the killed instance's last pull; slack for a loaded machine.
    expect(takeoverMs).toBeLessThan(PINNED_TTL_MS + 10_000);
    console.log(`exclusive SIGKILL takeover: ${takeoverMs} ms after the kill (pinned TTL ${PINNED_TTL_MS} ms), ${duplicates} handled again (done, ack lost with the process)`);
  });
});
