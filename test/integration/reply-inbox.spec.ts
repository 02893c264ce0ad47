import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NoReplierError, ReplyInbox, ReplyTimeoutError } from '../../lib/connection/reply-inbox.js';
import { testNatsUrl, uniqueName } from '../harness/index.js';

/** The shared reply inbox of confirmed acks and idempotency records, on a real server. */
describe('ReplyInbox', () => {
  let nc: NatsConnection;
  beforeEach(async () => {
    nc = await connect({ servers: testNatsUrl() });
  });
  afterEach(async () => {
    if (!nc.isClosed()) await nc.close();
  });

  it('answers many requests sent in one turn, each with its own reply', async () => {
    const subject = uniqueName('echo');
    nc.subscribe(subject, { callback: (_e, m) => void m.respond(m.data) });
    await nc.flush();
    const inbox = new ReplyInbox(nc, 2_000);
    const replies = await Promise.all(Array.from({ length: 500 }, (_, i) => inbox.request(subject, `m${i}`)));
    expect(replies.map((r) => r.string())).toEqual(Array.from({ length: 500 }, (_, i) => `m${i}`));
    inbox.close();
  });

  it('fails with NoReplierError when nothing listens', async () => {
    const inbox = new ReplyInbox(nc, 2_000);
    await expect(inbox.request(uniqueName('nobody'), 'x')).rejects.toBeInstanceOf(NoReplierError);
    inbox.close();
  });

  it('fails with ReplyTimeoutError when the listener never answers, and ignores a late reply', async () => {
    const subject = uniqueName('silent');
    const late: Array<() => void> = [];
    nc.subscribe(subject, { callback: (_e, m) => void late.push(() => void m.respond("late")) });
    await nc.flush();
    const inbox = new ReplyInbox(nc, 300);
    const started = Date.now();
    await expect(inbox.request(subject, 'x')).rejects.toBeInstanceOf(ReplyTimeoutError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    for (const reply of late) reply();
    await nc.flush();
    // The inbox still works after a reply that nobody waited for.
    nc.subscribe(`${subject}.ok`, { callback: (_e, m) => void m.respond("ok") });
    await nc.flush();
    expect((await inbox.request(`${subject}.ok`, 'y')).string()).toBe('ok');
    inbox.close();
  });

  it('rejects what is pending when closed or when the connection closes', async () => {
    const subject = uniqueName('hold');
    nc.subscribe(subject, { callback: () => undefined });
    await nc.flush();
    const inbox = new ReplyInbox(nc, 10_000);
    const pending = inbox.request(subject, 'x');
    const rejected = expect(pending).rejects.toThrow(/closed before/);
    await new Promise<void>((resolve) => setImmediate(resolve));
    inbox.close();
    await rejected;
    const second = new ReplyInbox(nc, 10_000);
    const onClose = second.request(subject, 'y');
    const closedToo = expect(onClose).rejects.toThrow(/connection closed/);
    await nc.flush();
    await nc.close();
    await closedToo;
    // Asked after the connection closed: the publish itself fails, and says so.
    await expect(second.request(subject, 'z')).rejects.toThrow(/closed/);
    second.close();
  });
});
