import { Kvm, type KV } from '@nats-io/kv';
import type { Type } from '@nestjs/common';
import { IsInt, IsString } from 'class-validator';
import {
  DeadLetterHeaders,
  HandlerConfigurationError,
  kvChangeOf,
  OnKvChange,
  type EventContext,
  type KvChange,
  type OnKvChangeOptions,
} from '../../lib/index.js';
import { testNatsUrl, uniqueName, waitFor } from '../harness/index.js';
import { sharedServerHooks, waitForDeadLetters } from './kit.js';
import { hasFeature } from './server-features-kit.js';

class Cart {
  @IsString() owner!: string;
  @IsInt() items!: number;
}

interface Seen {
  readonly value: unknown;
  readonly change: KvChange;
}

/** A fresh class per test: `@OnKvChange(bucket, pattern, options)` on `handle`, recording each call. */
function kvHandler(bucket: string, pattern: string, options: OnKvChangeOptions, seen: Seen[], onEach?: () => void): Type<unknown> {
  class CartWatcher {
    @OnKvChange(bucket, pattern, options)
    // Typed as the class, not `Cart | undefined`: reflection gives a union as Object, which would
    // turn off the binding. A delete or purge still arrives as undefined.
    handle(value: Cart, ctx: EventContext): void {
      seen.push({ value, change: kvChangeOf(ctx)! });
      onEach?.();
    }
  }
  return CartWatcher;
}

describe('KV change handlers (@OnKvChange)', () => {
  const hooks = sharedServerHooks();
  const buckets: KV[] = [];

  async function bucket(prefix: string, history = 5): Promise<{ name: string; kv: KV }> {
    const name = uniqueName(prefix);
    const kv = await new Kvm(hooks.client.nc).create(name, { history });
    buckets.push(kv);
    return { name, kv };
  }

  afterAll(async () => {
    await Promise.allSettled(buckets.map((kv) => kv.destroy()));
  });

  it('puts, a delete and a purge reach the handler with key, operation, revision and the validated value', async () => {
    const { name, kv } = await bucket('kvops');
    const seen: Seen[] = [];
    await hooks.apps.start({ servers: testNatsUrl() }, [kvHandler(name, 'cart.*', { durable: 'carts' }, seen)]);
    const r1 = await kv.put('cart.a', JSON.stringify({ owner: 'ann', items: 2 }));
    await kv.put('other', JSON.stringify({ owner: 'not watched', items: 0 }));
    const r2 = await kv.put('cart.b', JSON.stringify({ owner: 'bob', items: 1 }));
    await kv.delete('cart.a');
    await kv.purge('cart.b');
    await waitFor(() => seen.length === 4, { timeoutMs: 15_000, message: 'four changes handled' });
    expect(seen.map((s) => [s.change.key, s.change.operation])).toEqual([
      ['cart.a', 'put'],
      ['cart.b', 'put'],
      ['cart.a', 'delete'],
      ['cart.b', 'purge'],
    ]);
    expect(seen.map((s) => s.change.bucket)).toEqual([name, name, name, name]);
    expect(seen[0].change.revision).toBe(r1);
    expect(seen[1].change.revision).toBe(r2);
    expect(seen[2].change.revision).toBeGreaterThan(r2);
    expect(seen[0].value).toBeInstanceOf(Cart);
    expect(seen[0].value).toEqual({ owner: 'ann', items: 2 });
    expect(seen[2].value).toBeUndefined();
    expect(seen[3].value).toBeUndefined();
    expect(seen.every((s) => s.change.markerReason === undefined)).toBe(true);
  });

  it('a restart in the middle of a burst of changes misses none and replays none', async () => {
    // 300 changes over 20 keys: 15 a key. The bucket keeps all of them (history 64, the most a
    // bucket can): with history 5 a change whose key had 5 newer ones before the handler got to
    // it is gone from the bucket, so a handler lagging behind the writer (a loaded machine) would
    // never see it. That is the bucket's retention, not a loss by the module (docs say so).
    const { name, kv } = await bucket('kvburst', 64);
    const total = 300;
    const seen: Seen[] = [];
    const Handler = kvHandler(name, '>', { durable: 'burst', concurrency: 4 }, seen);
    const first = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    let firstClosed!: () => void;
    const closed = new Promise<void>((resolve) => (firstClosed = resolve));
    let writtenWhileDown = 0;
    let down = false;
    // Half the burst goes to the first app; the writer then waits for it to be closed, so the
    // rest is written while no app runs and while the second one starts.
    const writing = (async () => {
      for (let i = 0; i < total; i++) {
        if (i === total / 2) await closed;
        await kv.put(`k${i % 20}`, JSON.stringify({ owner: `o${i}`, items: i }));
        if (down) writtenWhileDown++;
      }
    })();
    await waitFor(() => seen.length >= 50, { timeoutMs: 15_000, message: '50 changes handled before the restart' });
    await first.close();
    const handledBeforeRestart = seen.length;
    down = true;
    firstClosed();
    await waitFor(() => writtenWhileDown >= 10, { timeoutMs: 15_000, message: 'changes written while no app runs' });
    down = false;
    await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    await writing;
    // Past the default ack wait (30 s): on a loaded machine a change delivered to the first app
    // as it closed may only come back once its ack wait runs out; that is a redelivery, not a
    // loss, and the count below still fails on any change handled twice.
    await waitFor(() => seen.length >= total, { timeoutMs: 60_000, message: () => `${total} changes handled, got ${seen.length} (${handledBeforeRestart} before the restart)` });
    // Nothing more arrives once every change was handled: a replay would show up here.
    const status = await kv.status();
    await waitFor(async () => (await hooks.client.jsm.consumers.info(`KV_${name}`, 'burst')).num_ack_pending === 0, {
      timeoutMs: 10_000,
      message: 'every change acked',
    });
    expect(seen.length).toBe(total);
    expect(handledBeforeRestart).toBeLessThan(total);
    const revisions = seen.map((s) => s.change.revision).sort((a, b) => a - b);
    expect(new Set(revisions).size).toBe(total);
    expect(revisions[0]).toBe(1);
    expect(revisions[total - 1]).toBe(total);
    expect(status.values).toBeGreaterThan(0);
  }, 120_000);

  it('changes a bucket no longer keeps (more than `history` newer ones of the key) are not handled: the docs\' limit', async () => {
    const { name, kv } = await bucket('kvhist', 3);
    const seen: Seen[] = [];
    const Handler = kvHandler(name, '>', { durable: 'late' }, seen);
    const first = await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    await kv.put('cart.a', JSON.stringify({ owner: 'v1', items: 1 }));
    await waitFor(() => seen.length === 1, { timeoutMs: 15_000, message: 'the first change handled' });
    await first.close();
    // While no app runs, the key changes 8 times; the bucket keeps its last 3.
    for (let i = 2; i <= 9; i++) await kv.put('cart.a', JSON.stringify({ owner: `v${i}`, items: i }));
    await hooks.apps.start({ servers: testNatsUrl() }, [Handler]);
    await waitFor(() => seen.length === 4, { timeoutMs: 15_000, message: () => `the 3 kept changes handled, got ${seen.length - 1}` });
    const info = await hooks.client.jsm.consumers.info(`KV_${name}`, 'late');
    expect(info.num_pending).toBe(0);
    expect(seen.map((s) => (s.value as Cart).owner)).toEqual(['v1', 'v7', 'v8', 'v9']);
    expect(seen.map((s) => s.change.revision)).toEqual([1, 7, 8, 9]);
  });

  it('a value that fails validation is dead-lettered with the usual headers; the next change still runs', async () => {
    const { name, kv } = await bucket('kvbad');
    const dlqStream = uniqueName('DL');
    const seen: Seen[] = [];
    const app = await hooks.apps.start({ servers: testNatsUrl() }, [
      kvHandler(name, 'cart.*', { durable: 'strict', dlq: { stream: dlqStream, subject: `${dlqStream}.letters` } }, seen),
    ]);
    const bad = await kv.put('cart.x', JSON.stringify({ owner: 42, items: 'many' }));
    await kv.put('cart.y', JSON.stringify({ owner: 'yan', items: 3 }));
    const [letter] = await waitForDeadLetters(app, dlqStream, 1);
    await waitFor(() => seen.length === 1, { timeoutMs: 15_000, message: 'the valid change handled' });
    try {
      expect(letter.reason).toBe('invalid-payload');
      expect(letter.originalStream).toBe(`KV_${name}`);
      expect(letter.originalSubject).toBe(`$KV.${name}.cart.x`);
      expect(letter.originalSequence).toBe(bad);
      expect(letter.attempts).toBe(1);
      expect(letter.headers[DeadLetterHeaders.ErrorName][0]).toBe('PayloadValidationError');
      expect(letter.headers[DeadLetterHeaders.ErrorMessage][0]).toMatch(/Payload is not a valid Cart/);
      expect(seen[0].change.key).toBe('cart.y');
    } finally {
      await hooks.client.jsm.streams.delete(dlqStream).catch(() => undefined);
    }
  });

  it('a key whose TTL runs out arrives as a delete with markerReason MaxAge (2.11+; on 2.10 the server keeps no markers)', async () => {
    const name = uniqueName('kvttl');
    const kv = await new Kvm(hooks.client.nc).create(name, { markerTTL: 1000 });
    buckets.push(kv);
    const config = (await hooks.client.jsm.streams.info(`KV_${name}`)).config;
    if (!hasFeature(hooks.client, 'subjectDeleteMarkers')) {
      // 2.10 drops the flag without a word: no marker can ever reach a handler there.
      expect(config.subject_delete_marker_ttl ?? 0).toBe(0);
      return;
    }
    expect(config.subject_delete_marker_ttl).toBeGreaterThan(0);
    const seen: Seen[] = [];
    await hooks.apps.start({ servers: testNatsUrl() }, [kvHandler(name, '>', { durable: 'expiry' }, seen)]);
    const put = await kv.create('session.1', JSON.stringify({ owner: 'eve', items: 1 }), '1s');
    await waitFor(() => seen.length === 2, { timeoutMs: 15_000, message: 'the put and its expiry marker handled' });
    expect(seen[0].change).toMatchObject({ key: 'session.1', operation: 'put', revision: put, markerReason: undefined });
    expect(seen[1].change).toMatchObject({ key: 'session.1', operation: 'delete', markerReason: 'MaxAge' });
    expect(seen[1].change.revision).toBeGreaterThan(put);
    expect(seen[1].value).toBeUndefined();
  });

  it('a bucket that does not exist fails startup with an error naming the bucket', async () => {
    const name = uniqueName('kvnone');
    const start = hooks.apps.start({ servers: testNatsUrl() }, [kvHandler(name, '>', { durable: 'nobody' }, [])]);
    await expect(start).rejects.toThrow(HandlerConfigurationError);
    await expect(start).rejects.toThrow(`KV bucket "${name}" does not exist (no stream KV_${name}); create it before the app starts, or set createBucket`);
  });

  it('createBucket creates a missing bucket at startup and leaves an existing one as it is', async () => {
    const name = uniqueName('kvmade');
    const seen: Seen[] = [];
    await hooks.apps.start({ servers: testNatsUrl() }, [kvHandler(name, '>', { durable: 'maker', createBucket: { history: 3 } }, seen)]);
    const kv = await new Kvm(hooks.client.nc).open(name);
    buckets.push(kv);
    expect((await kv.status()).history).toBe(3);
    await kv.put('a', JSON.stringify({ owner: 'ann', items: 1 }));
    await waitFor(() => seen.length === 1, { timeoutMs: 15_000, message: 'the put handled' });
    expect(seen[0].change).toMatchObject({ bucket: name, key: 'a', operation: 'put' });

    const { name: existing } = await bucket('kvkept');
    await hooks.apps.start({ servers: testNatsUrl() }, [kvHandler(existing, '>', { durable: 'keeper', createBucket: { history: 9 } }, [])]);
    expect((await (await new Kvm(hooks.client.nc).open(existing)).status()).history).toBe(5);
  });

  it('refuses, when the class is declared, a handler without a durable or with a bad bucket name', () => {
    expect(() => OnKvChange('carts', '>', {} as OnKvChangeOptions)).toThrow(/needs a durable/);
    expect(() => OnKvChange('car.ts', '>', { durable: 'd' })).toThrow(/a bucket name holds only/);
    expect(() => OnKvChange('carts', 'a b', { durable: 'd' })).toThrow(/a key pattern holds only/);
  });
});
