import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Injectable } from '@nestjs/common';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { createAsyncApiDocument, EventContext, OnEvent, type AsyncApiDocument } from '../../lib/index.js';
import { NatsServerProcess, testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { asyncApiSchemaErrors } from '../support/asyncapi-validator.js';
import { createStream, sharedServerHooks } from './kit.js';

/**
 * The operations CLI, run as users run it: the built `dist/cli/main.js` in its own process,
 * against a real nats-server. Each test checks the exit code, what was printed, and what
 * changed on the server.
 */

// jest runs from the repository root (rootDir), where package.json and dist/ live.
const ROOT = resolve(process.cwd());
const CLI = join(ROOT, 'dist/cli/main.js');
const FIXTURE = join(ROOT, 'test/fixtures/asyncapi-app.mjs');

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI with a clean NATS environment (the caller adds what it tests). */
function cli(args: readonly string[], env: Record<string, string> = {}, cwd = ROOT): Promise<Run> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NATS_')));
  return new Promise((done) => {
    execFile('node', [CLI, ...args], { env: { ...base, ...env }, cwd, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

/** The CLI against the shared test server; fails the test with the CLI's stderr unless it exits 0. */
async function ok(args: readonly string[]): Promise<string> {
  const run = await cli([...args, '--server', testNatsUrl()]);
  if (run.code !== 0) throw new Error(`CLI ${args.join(' ')} exited ${run.code}: ${run.stderr}`);
  return run.stdout;
}

/** The line every connecting command prints first on stderr: which server it used, and why. */
function serverLine(url: string, source: string): string {
  return `nestjs-jetstream: server ${new URL(url).host} (${source})\n`;
}

async function okJson<T>(args: readonly string[]): Promise<T> {
  return JSON.parse(await ok([...args, '--json'])) as T;
}

const hooks = sharedServerHooks();
const extraStreams: string[] = [];

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
});
afterAll(async () => {
  await Promise.allSettled(extraStreams.map((s) => hooks.client.jsm.streams.delete(s)));
});

async function messageCount(stream: string): Promise<number> {
  return (await hooks.client.jsm.streams.info(stream)).state.messages;
}

interface LetterJson {
  seq: number;
  originalSubject: string;
  originalStream: string;
  originalSequence: number;
  consumer: string;
  handler: string;
  attempts: number;
  reason: string;
  error: { name: string; message: string };
  failedAt: string;
  payload: string | null;
  headers: Record<string, string[]>;
}

describe('dlq', () => {
  it('lists, shows, redrives, deletes and purges the dead letters an app produced', async () => {
    const stream = uniqueName('CLI_DLQ');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const dlqStream = uniqueName('CLI_DL');
    extraStreams.push(dlqStream);
    const subject = `${stream}.orders`;
    let failing = true;
    const handled: string[] = [];
    @Injectable()
    class Orders {
      @OnEvent(subject, { durable: 'orders', retry: false, dlq: { stream: dlqStream, subject: `${dlqStream}.letters` } })
      handle(order: { id: string }) {
        if (failing) throw new Error(`cannot ship ${order.id}`);
        handled.push(order.id);
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Orders]);
    for (const id of ['a', 'b', 'c']) await app.publisher.publish(subject, { id });
    await waitFor(async () => (await messageCount(dlqStream)) === 3, { timeoutMs: 15_000, message: '3 dead letters' });

    const letters = await okJson<LetterJson[]>(['dlq', 'list', '--stream', dlqStream]);
    expect(letters.map((l) => JSON.parse(l.payload ?? 'null').id)).toEqual(['a', 'b', 'c']);
    expect(letters[0]).toMatchObject({
      originalSubject: subject,
      originalStream: stream,
      originalSequence: 1,
      consumer: 'orders',
      handler: 'Orders.handle',
      attempts: 1,
      error: { name: 'Error', message: 'cannot ship a' },
    });
    expect(Number.isNaN(Date.parse(letters[0].failedAt))).toBe(false);

    const table = (await ok(['dlq', 'list', '--stream', dlqStream])).trimEnd().split('\n');
    expect(table[0]).toMatch(/^SEQ\s+FAILED AT\s+SUBJECT\s+FROM\s+CONSUMER\s+ATTEMPTS\s+REASON\s+ERROR$/);
    expect(table).toHaveLength(4);
    expect(table[1]).toContain(`${stream}:1`);
    expect(table[1]).toContain('Error: cannot ship a');

    expect(await okJson(['dlq', 'list', '--stream', dlqStream, '--consumer', 'someone-else'])).toEqual([]);
    expect(await okJson<LetterJson[]>(['dlq', 'list', '--stream', dlqStream, '--limit', '2'])).toHaveLength(2);

    const [first, second, third] = letters;
    const shown = await ok(['dlq', 'show', String(second.seq), '--stream', dlqStream]);
    expect(shown).toMatch(new RegExp(`Original subject:\\s+${subject}`));
    expect(shown).toContain('Dlq-Error-Message: cannot ship b');
    expect(shown).toContain('Payload:\n{"id":"b"}');
    expect(await okJson<LetterJson>(['dlq', 'show', String(second.seq), '--stream', dlqStream])).toMatchObject({ seq: second.seq, payload: '{"id":"b"}' });

    // Redrive one: it goes back to its subject, the now healthy handler takes it, the letter is gone.
    failing = false;
    const redriven = await okJson<{ deadLetterSeq: number; subject: string; seq: number }>([
      'dlq', 'redrive', String(first.seq), '--stream', dlqStream,
    ]);
    expect(redriven).toMatchObject({ deadLetterSeq: first.seq, subject });
    await waitFor(() => handled.includes('a'), { message: 'redriven message handled' });
    expect(await messageCount(dlqStream)).toBe(2);

    expect(await ok(['dlq', 'delete', String(second.seq), '--stream', dlqStream])).toBe(`Deleted dead letter ${second.seq}.\n`);
    expect(await messageCount(dlqStream)).toBe(1);

    expect(await okJson(['dlq', 'redrive', '--all', '--consumer', 'orders', '--stream', dlqStream])).toEqual({ redriven: 1 });
    await waitFor(() => handled.includes('c'), { message: 'redrive --all handled' });
    expect(await messageCount(dlqStream)).toBe(0);
    expect(handled).toEqual(['a', 'c']);

    // Purge: refuses without --yes, then removes only the consumer's letters.
    failing = true;
    for (const id of ['d', 'e']) await app.publisher.publish(subject, { id });
    await waitFor(async () => (await messageCount(dlqStream)) === 2, { timeoutMs: 15_000, message: '2 more dead letters' });
    const refused = await cli(['dlq', 'purge', '--stream', dlqStream, '--server', testNatsUrl()]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('add --yes to confirm');
    expect(await messageCount(dlqStream)).toBe(2);
    expect(await okJson(['dlq', 'purge', '--stream', dlqStream, '--consumer', 'nobody', '--yes'])).toEqual({ purged: 0 });
    // --durable is the old name of --consumer: it still works, with a warning on stderr only.
    const old = await cli(['dlq', 'purge', '--stream', dlqStream, '--durable', 'orders', '--yes', '--server', testNatsUrl()]);
    expect(old).toMatchObject({ code: 0, stdout: 'Purged 2 dead letters.\n' });
    expect(old.stderr).toContain('nestjs-jetstream: warning: --durable is deprecated, use --consumer\n');
    expect(await messageCount(dlqStream)).toBe(0);

    const missing = await cli(['dlq', 'show', String(third.seq), '--stream', dlqStream, '--server', testNatsUrl()]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `${serverLine(testNatsUrl(), 'from --server')}nestjs-jetstream: error: dead letter ${dlqStream} seq ${third.seq} does not exist\n`,
    );
  });

  it('says so when the dead-letter stream does not exist', async () => {
    const name = uniqueName('NO_SUCH');
    for (const args of [['list'], ['show', '1'], ['redrive', '--all'], ['purge', '--yes']]) {
      const run = await cli(['dlq', ...args, '--stream', name, '--server', testNatsUrl()]);
      expect(run.code).toBe(1);
      expect(run.stderr).toBe(`${serverLine(testNatsUrl(), 'from --server')}nestjs-jetstream: error: dead-letter stream "${name}" does not exist\n`);
    }
  });
});

interface ConsumerRowJson {
  stream: string;
  name: string;
  durable: boolean;
  filter: string[];
  pending: number;
  ackPending: number;
  lag: number;
  redelivered: number;
  lastActive: string | null;
}

describe('consumers', () => {
  it('shows each consumer with its pending, ack-pending and redelivered counts', async () => {
    const stream = uniqueName('CLI_LAG');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    for (let i = 1; i <= 5; i++) await hooks.client.js.publish(`${stream}.a`, `m${i}`);
    await hooks.client.js.publish(`${stream}.b`, 'other');
    await hooks.client.jsm.consumers.add(stream, { durable_name: 'busy', ack_policy: AckPolicy.Explicit, filter_subject: `${stream}.a` });
    await hooks.client.jsm.consumers.add(stream, { durable_name: 'idle', ack_policy: AckPolicy.Explicit, filter_subject: `${stream}.b` });
    // Two delivered to "busy": one acknowledged (confirmed), one left in flight.
    const batch = await (await hooks.client.js.consumers.get(stream, 'busy')).fetch({ max_messages: 2, expires: 2_000 });
    const got = [];
    for await (const m of batch) got.push(m);
    expect(got).toHaveLength(2);
    expect(await got[0].ackAck()).toBe(true);

    const rows = await okJson<ConsumerRowJson[]>(['consumers', '--stream', stream]);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ stream, name: 'busy', durable: true, filter: [`${stream}.a`], pending: 3, ackPending: 1, lag: 4, redelivered: 0 });
    expect(Number.isNaN(Date.parse(rows[0].lastActive ?? ''))).toBe(false);
    expect(rows[1]).toMatchObject({ name: 'idle', pending: 1, ackPending: 0, lag: 1, lastActive: null });

    const table = (await ok(['consumers', '--stream', stream])).trimEnd().split('\n');
    expect(table[0]).toMatch(/^STREAM\s+CONSUMER\s+FILTER\s+PENDING\s+ACK PENDING\s+REDELIVERED\s+LAST ACTIVE$/);
    expect(table[1].split(/\s{2,}/).slice(0, 6)).toEqual([stream, 'busy', `${stream}.a`, '3', '1', '0']);
    expect(table[2].split(/\s{2,}/)).toEqual([stream, 'idle', `${stream}.b`, '1', '0', '0', '-']);

    // Without --stream: every stream, this one's consumers among them.
    const all = await okJson<ConsumerRowJson[]>(['consumers']);
    expect(all.filter((r) => r.stream === stream).map((r) => r.name)).toEqual(['busy', 'idle']);

    const missing = await cli(['consumers', '--stream', uniqueName('NOPE'), '--server', testNatsUrl()]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/Stream "NOPE_.*" does not exist\n$/);
  });
});

interface ReplayJson {
  method: 'reset' | 'recreate';
  stream: string;
  consumer: string;
  startSeq: number;
  previousAckFloor: number;
  pending: number;
}

describe('consumers pause|resume', () => {
  it('pauses a consumer until a time and resumes it; a server older than 2.11 is refused naming the version', async () => {
    const stream = uniqueName('CLI_PAUSE');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    await hooks.client.jsm.consumers.add(stream, { durable_name: 'billing', ack_policy: AckPolicy.Explicit });
    const until = new Date(Date.now() + 3_600_000).toISOString();
    const version = hooks.client.nc.info?.version ?? '0.0.0';
    const [major, minor] = version.split('.').map(Number);
    if (major === 2 && minor < 11) {
      const refused = await cli(['consumers', 'pause', stream, 'billing', '--until', until, '--server', testNatsUrl()]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`consumer pause (pause_until) needs nats-server 2.11.0 or newer; the connected server is ${version}`);
      return;
    }
    const paused = await okJson<{ paused: boolean; pauseUntil: string }>(['consumers', 'pause', stream, 'billing', '--until', until]);
    expect(paused).toEqual({ stream, consumer: 'billing', paused: true, pauseUntil: until });
    expect((await hooks.client.jsm.consumers.info(stream, 'billing')).paused).toBe(true);
    expect(await ok(['consumers', '--stream', stream])).toContain('billing (paused)');
    expect(await ok(['consumers', 'resume', stream, 'billing'])).toMatch(/^Consumer billing on CLI_PAUSE_\S+ (paused until|is not paused)/);
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'billing')).paused !== true, { message: 'resumed' });
    const text = await ok(['consumers', 'pause', stream, 'billing', '--for', '30m']);
    expect(text).toMatch(/paused until .*resume with: consumers resume/);
    const bad = await cli(['consumers', 'pause', stream, 'billing', '--for', 'soon', '--server', testNatsUrl()]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--for must be a number and a unit (s, m, h, d)');
  });
});

describe('schedules list|cancel', () => {
  it('lists a stream’s schedules and cancels one; a server older than 2.12 is refused naming the version', async () => {
    const stream = uniqueName('CLI_SCHED');
    const version = hooks.client.nc.info?.version ?? '0.0.0';
    const [major, minor] = version.split('.').map(Number);
    if (major === 2 && minor < 12) {
      await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
      const refused = await cli(['schedules', '--stream', stream, '--server', testNatsUrl()]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`list schedules: one-shot message schedules (@at, allow_msg_schedules) needs nats-server 2.12.0 or newer; the connected server is ${version}`);
      return;
    }
    await createStream(hooks.client.jsm, stream, [`${stream}.>`, `_schedules.${stream}.>`], { allow_msg_schedules: true });
    const at = new Date(Date.now() + 3_600_000);
    await hooks.client.js.publish(`_schedules.${stream}.later`, JSON.stringify({ n: 1 }), {
      schedule: { specification: at, target: `${stream}.due` },
    });
    const listed = await okJson<Array<{ name: string; schedule: string; target: string; payload: unknown }>>(['schedules', '--stream', stream]);
    expect(listed).toMatchObject([{ stream, name: 'later', target: `${stream}.due`, payload: { n: 1 } }]);
    expect(listed[0].schedule).toMatch(/^@at \d{4}-/);
    const table = (await ok(['schedules', 'list', '--stream', stream])).trimEnd().split('\n');
    expect(table[0]).toMatch(/^STREAM\s+NAME\s+SCHEDULE\s+TARGET\s+STORED\s+PAYLOAD$/);
    expect(table[1]).toContain('later');
    const unconfirmed = await cli(['schedules', 'cancel', stream, 'later', '--server', testNatsUrl()]);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toContain('add --yes to confirm');
    expect(await ok(['schedules', 'cancel', stream, 'later', '--yes'])).toBe(`Cancelled schedule later on ${stream}.\n`);
    expect(await ok(['schedules', '--stream', stream])).toBe(`No schedules on stream ${stream}.\n`);
    expect(await okJson(['schedules', 'cancel', stream, 'later', '--yes'])).toEqual({ stream, name: 'later', cancelled: false });
  });
});

describe('replay', () => {
  // The consumer reset API came with nats-server 2.14; older servers get a clear refusal that
  // names --recreate, and the suite runs against either (NATS_SERVER_BIN=... npm test).
  const RESET_REFUSED = /cannot reset a consumer in place \(2\.14\+ can\).*--recreate/;
  const canReset = (): boolean => {
    const [major, minor] = (hooks.client.nc.info?.version ?? '0.0.0').split('.').map(Number);
    return major > 2 || (major === 2 && minor >= 14);
  };

  it('resets a durable to a sequence while its app keeps consuming; the handler gets those messages again', async () => {
    const stream = uniqueName('CLI_REPLAY');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    const subject = `${stream}.events`;
    const seen: Array<{ seq: number; n: number }> = [];
    @Injectable()
    class Projection {
      @OnEvent(subject, { durable: 'projection' })
      handle(event: { n: number }, ctx: EventContext) {
        seen.push({ seq: ctx.sequence, n: event.n });
      }
    }
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [Projection]);
    for (let n = 1; n <= 4; n++) await app.publisher.publish(subject, { n });
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'projection')).ack_floor.stream_seq === 4, {
      message: 'all 4 acknowledged',
    });

    if (!canReset()) {
      const refused = await cli(['replay', stream, 'projection', '--from-seq', '2', '--yes', '--server', testNatsUrl()]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(RESET_REFUSED);
      return;
    }
    const result = await okJson<ReplayJson>(['replay', stream, 'projection', '--from-seq', '2', '--yes']);
    expect(result).toEqual({ method: 'reset', stream, consumer: 'projection', startSeq: 2, previousAckFloor: 4, pending: 3 });
    await waitFor(() => seen.length === 7, { message: 'messages 2..4 handled again' });
    expect(seen.map((s) => s.seq)).toEqual([1, 2, 3, 4, 2, 3, 4]);
    const info = await hooks.client.jsm.consumers.info(stream, 'projection');
    // Still the same durable with the app's own config: nothing for the app to object to on restart.
    expect(info.config.deliver_policy).toBe(DeliverPolicy.All);
    await waitFor(async () => (await hooks.client.jsm.consumers.info(stream, 'projection')).ack_floor.stream_seq === 4, {
      message: 'replayed messages acknowledged',
    });
  });

  it('replays from a time: the first message stored at or after it', async () => {
    const stream = uniqueName('CLI_TIME');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    await hooks.client.js.publish(`${stream}.x`, '1');
    await hooks.client.js.publish(`${stream}.x`, '2');
    const secondAt = (await hooks.client.jsm.streams.getMessage(stream, { seq: 2 }))!.time.getTime();
    // Server timestamps are nanoseconds; step past the millisecond the second message was stored in.
    await waitFor(() => Date.now() >= secondAt + 2, { message: 'clock past message 2' });
    const from = new Date().toISOString();
    await hooks.client.js.publish(`${stream}.x`, '3');
    await hooks.client.js.publish(`${stream}.x`, '4');
    await hooks.client.jsm.consumers.add(stream, { durable_name: 'reader', ack_policy: AckPolicy.Explicit });
    const consumer = await hooks.client.js.consumers.get(stream, 'reader');
    const read = async (n: number) => {
      const seqs: number[] = [];
      for await (const m of await consumer.fetch({ max_messages: n, expires: 2_000 })) {
        seqs.push(m.seq);
        await m.ackAck();
      }
      return seqs;
    };
    expect(await read(4)).toEqual([1, 2, 3, 4]);

    if (!canReset()) {
      const refused = await cli(['replay', stream, 'reader', '--from-time', from, '--yes', '--server', testNatsUrl()]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(RESET_REFUSED);
      const recreated = await okJson<ReplayJson>(['replay', stream, 'reader', '--from-time', from, '--yes', '--recreate']);
      expect(recreated).toMatchObject({ method: 'recreate', startSeq: 3, pending: 2 });
      return;
    }
    const result = await okJson<ReplayJson>(['replay', stream, 'reader', '--from-time', from, '--yes']);
    expect(result).toMatchObject({ method: 'reset', startSeq: 3, pending: 2 });
    expect(await read(4)).toEqual([3, 4]);

    const human = await ok(['replay', stream, 'reader', '--from-seq', '4', '--yes']);
    expect(human).toBe(`Consumer reader on stream ${stream} now delivers from seq 4 (was acknowledged up to 4): reset in place.\n1 message pending.\n`);
  });

  it('a durable that started at "new" cannot be reset: it says so, and --recreate recreates it', async () => {
    const stream = uniqueName('CLI_NEW');
    await createStream(hooks.client.jsm, stream, [`${stream}.>`]);
    for (let i = 0; i < 3; i++) await hooks.client.js.publish(`${stream}.x`, String(i));
    await hooks.client.jsm.consumers.add(stream, { durable_name: 'late', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.New });

    const refused = await cli(['replay', stream, 'late', '--from-seq', '1', '--yes', '--server', testNatsUrl()]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(canReset() ? /deliver policy "new"/ : RESET_REFUSED);
    expect(refused.stderr).toContain('--recreate');

    const result = await okJson<ReplayJson>(['replay', stream, 'late', '--from-seq', '2', '--yes', '--recreate']);
    expect(result).toMatchObject({ method: 'recreate', startSeq: 2, pending: 2 });
    const info = await hooks.client.jsm.consumers.info(stream, 'late');
    expect(info.config).toMatchObject({ deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: 2, ack_policy: AckPolicy.Explicit });

    const missing = await cli(['replay', stream, 'ghost', '--from-seq', '1', '--yes', '--server', testNatsUrl()]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`${serverLine(testNatsUrl(), 'from --server')}nestjs-jetstream: error: Consumer "ghost" does not exist on stream "${stream}"\n`);
  });
});

describe('command line mistakes', () => {
  it.each([
    [['frobnicate'], 'unknown command "frobnicate"'],
    [[], 'no command given'],
    [['dlq'], 'dlq needs an action'],
    [['dlq', 'show'], "needs the dead letter's sequence"],
    [['dlq', 'show', 'abc'], 'sequence must be an integer >= 1, got "abc"'],
    [['dlq', 'list', '--limit'], "Option '--limit <value>' argument missing"],
    [['dlq', 'list', '--bogus'], "Unknown option '--bogus'"],
    [['dlq', 'redrive', '3', '--all'], 'give a sequence or --all, not both'],
    [['dlq', 'list', '--consumer', 'a', '--durable', 'b'], '--durable is the old name of --consumer; give --consumer only'],
    [['replay', 'S', 'D', '--yes'], 'give exactly one of --from-seq and --from-time'],
    [['replay', 'S', 'D', '--from-seq', '0', '--yes'], '--from-seq must be an integer >= 1'],
    [['replay', 'S', 'D', '--from-time', 'yesterday', '--yes'], '--from-time must be an ISO 8601 time'],
    [['replay', 'S', 'D', '--from-seq', '5'], 'add --yes to confirm'],
    [['consumers', '--user', 'a', '--token', 't'], 'choose one authentication method'],
    [['consumers', '--password', 'p'], 'a password needs a user'],
    [['consumers', '--timeout', 'soon'], '--timeout must be an integer'],
  ])('%j exits 2 with the usage', async (args, message) => {
    // Unreachable server: a usage error must be found before any connection attempt.
    const run = await cli([...(args.length ? ['--server', 'nats://127.0.0.1:1'] : []), ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stderr).toMatch(/Usage:|nestjs-jetstream (dlq|replay|consumers)/);
    expect(run.stdout).toBe('');
  });

  it('help and --help print the usage on stdout and exit 0', async () => {
    const help = await cli(['help', 'replay']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('nestjs-jetstream replay <stream> <consumer>');
    const flag = await cli(['dlq', '--help']);
    expect(flag.code).toBe(0);
    expect(flag.stdout).toContain('nestjs-jetstream dlq purge --yes');
    const version = await cli(['--version']);
    expect(version.stdout).toBe(`${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version}\n`);
  });
});

describe('connection errors', () => {
  it('an unreachable server: exit 1, one line, no secret; the stack only with --verbose', async () => {
    const run = await cli(['consumers', '--server', 'nats://admin:s3cret-pw@127.0.0.1:1', '--timeout', '1000']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^nestjs-jetstream: error: Could not connect to NATS at nats:\/\/\*\*\*@127\.0\.0\.1:1: .+\n$/);
    expect(run.stderr).not.toContain('s3cret-pw');
    expect(run.stdout).toBe('');

    const verbose = await cli(['consumers', '--json', '--verbose', '--user', 'admin', '--password', 'hunter2'], {
      NATS_URL: 'nats://127.0.0.1:1',
    });
    expect(verbose.code).toBe(1);
    expect(verbose.stderr).toMatch(/\n\s+at /);
    expect(verbose.stderr).not.toContain('hunter2');
  });

  it('authenticates with --user/--password and with NATS_TOKEN; a wrong password is refused without echoing it', async () => {
    const userServer = await NatsServerProcess.start({ args: ['--user', 'ops', '--pass', 'right-pw'] });
    const tokenServer = await NatsServerProcess.start({ args: ['--auth', 'tok-3e5c'] });
    try {
      const good = await cli(['consumers', '--json', '--server', userServer.url, '--user', 'ops', '--password', 'right-pw']);
      expect(good).toMatchObject({ code: 0, stdout: '[]\n' });

      const bad = await cli(['consumers', '--server', userServer.url, '--user', 'ops', '--password', 'wrong-pw']);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/Could not connect to NATS at .*: .*(Authorization|authorization)/);
      expect(bad.stderr).not.toContain('wrong-pw');

      const token = await cli(['consumers', '--json'], { NATS_URL: tokenServer.url, NATS_TOKEN: 'tok-3e5c' });
      expect(token).toMatchObject({ code: 0, stdout: '[]\n' });
      // Which server answered, and where that came from, on stderr: stdout stays plain JSON.
      expect(token.stderr).toBe(serverLine(tokenServer.url, 'from NATS_URL'));
      expect(good.stderr).toBe(serverLine(userServer.url, 'from --server'));
      const noToken = await cli(['consumers'], { NATS_URL: tokenServer.url });
      expect(noToken.code).toBe(1);
    } finally {
      await Promise.all([userServer.stop(), tokenServer.stop()]);
    }
  });
});

describe('asyncapi', () => {
  it('prints the document of a compiled module without connecting, or writes it to --out', async () => {
    const run = await cli(['asyncapi', FIXTURE, '--title', 'Billing', '--api-version', '3.1.0']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const doc = JSON.parse(run.stdout) as AsyncApiDocument;
    expect(asyncApiSchemaErrors(doc)).toEqual([]);
    expect(doc.info).toMatchObject({ title: 'Billing', version: '3.1.0' });
    expect(Object.keys(doc.channels)).toEqual(['orders_placed', 'orders_star_audit']);
    expect(doc.operations.Billing_charge).toMatchObject({
      action: 'receive',
      channel: { $ref: '#/channels/orders_placed' },
      'x-jetstream-durable': 'billing',
      'x-jetstream-stream': 'ORDERS',
    });
    expect(doc.components.schemas.OrderPlaced).toEqual({
      type: 'object',
      title: 'OrderPlaced',
      properties: { id: { type: 'string' }, qty: { type: 'integer', minimum: 1 } },
      required: ['id', 'qty'],
    });

    const dir = mkdtempSync(join(tmpdir(), 'asyncapi-'));
    try {
      const written = await cli(['asyncapi', FIXTURE, '--out', join(dir, 'asyncapi.json')]);
      expect(written.code).toBe(0);
      expect(written.stdout).toBe('');
      expect(written.stderr).toContain('2 channels, 2 operations');
      const fromFile = JSON.parse(readFileSync(join(dir, 'asyncapi.json'), 'utf8')) as AsyncApiDocument;
      // Without --title/--api-version: the package.json of the working directory.
      expect(fromFile.info).toMatchObject({ title: 'nestjs-jetstream', version: JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version });
      expect(fromFile.channels).toEqual(doc.channels);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails clearly on a missing file, a missing export and TypeScript sources', async () => {
    const missing = await cli(['asyncapi', 'nope/app.module.js']);
    expect(missing).toMatchObject({ code: 1, stderr: 'nestjs-jetstream: error: module file nope/app.module.js does not exist\n' });
    const noExport = await cli(['asyncapi', FIXTURE, '--export', 'Nope']);
    expect(noExport.code).toBe(1);
    expect(noExport.stderr).toContain('has no module export "Nope"; it exports AppModule, Billing, OrderPlaced, OtherModule');
    const ts = await cli(['asyncapi', 'test/unit/asyncapi.spec.ts']);
    expect(ts.code).toBe(1);
    expect(ts.stderr).toContain('is TypeScript; build it first');
    const noFile = await cli(['asyncapi']);
    expect(noFile.code).toBe(2);
  });

  it('documents a running application the same way, with its streams resolved from its options', async () => {
    const stream = uniqueName('CLI_DOC');
    @Injectable()
    class Audit {
      @OnEvent(`${stream}.audit.*`, { durable: 'audit', delivery: 'at-most-once' })
      handle(_payload: unknown) {}
    }
    const app = await hooks.apps.start({ servers: testNatsUrl(), streams: [{ name: stream, subjects: [`${stream}.>`] }] }, [Audit]);
    extraStreams.push(stream);
    const doc = await createAsyncApiDocument(app.inner.app, { title: 'running', version: '1' });
    expect(asyncApiSchemaErrors(doc)).toEqual([]);
    expect(doc.operations.Audit_handle).toMatchObject({
      'x-jetstream-durable': 'audit',
      'x-jetstream-delivery': 'at-most-once',
      'x-jetstream-stream': stream,
    });
    expect(doc.channels[Object.keys(doc.channels)[0]].address).toBe(`${stream}.audit.{token3}`);
    expect(doc['x-jetstream-streams']).toEqual([{ name: stream, subjects: [`${stream}.>`] }]);
  });
});
