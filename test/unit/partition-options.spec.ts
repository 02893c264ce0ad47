import type { OnEventOptions } from '../../lib/decorators/on-event-options.js';
import { resolveHandlerOptions } from '../../lib/discovery/resolve-handler-options.js';
import { partitionKeyWildcards } from '../../lib/discovery/resolve-partition-options.js';
import { assignPartitions } from '../../lib/groups/partition-assignment.js';
import { partitionStreamName, partitionTransform } from '../../lib/provisioning/partition-stream.js';

const resolve = (options: OnEventOptions) => resolveHandlerOptions('Billing.handle', {}, { durable: 'billing', ...options });
const fail = (message: string): never => {
  throw new Error(message);
};

describe('partitions handler options', () => {
  it('defaults: the key from every * wildcard, 5 s member and pinned TTLs, pulls expiring at a third of the pinned TTL', () => {
    expect(resolve({ partitions: { count: 12 } }).partitions).toEqual({
      count: 12,
      key: [],
      memberTtlMs: 5_000,
      pinned: { group: 'partition', pinnedTtlMs: 5_000, pullExpiresMs: 1_666 },
    });
    expect(resolve({ partitions: { count: 4, key: [2, 1], memberTtlMs: 2_000, pinnedTtlMs: 9_000 } }).partitions).toEqual({
      count: 4,
      key: [1, 2],
      memberTtlMs: 2_000,
      pinned: { group: 'partition', pinnedTtlMs: 9_000, pullExpiresMs: 3_000 },
    });
    // concurrency is the instance's capacity across its partitions, so any value is fine.
    expect(resolve({ partitions: { count: 4 }, concurrency: 8 }).concurrency).toBe(8);
    expect(resolve({}).partitions).toBeUndefined();
  });

  it.each<[OnEventOptions, RegExp]>([
    [{ partitions: { count: 0 } }, /partitions.count must be an integer from 1 to 1024, got 0/],
    [{ partitions: { count: 2.5 } }, /partitions.count must be an integer from 1 to 1024, got 2.5/],
    [{ partitions: { count: 5_000 } }, /partitions.count must be an integer from 1 to 1024, got 5000/],
    [{ partitions: {} as never }, /partitions.count must be an integer/],
    [{ partitions: 12 as never }, /partitions must be \{ count, key\?, memberTtlMs\?, pinnedTtlMs\? \}, got 12/],
    [{ durable: undefined, partitions: { count: 4 } }, /partitions needs a durable/],
    [{ partitions: { count: 4 }, batch: { maxMessages: 10 } }, /partitions cannot be combined with batch/],
    [{ partitions: { count: 4 }, orderBy: 'subject' }, /partitions keeps the order of each key across the deployment; drop orderBy/],
    [{ partitions: { count: 4 }, exclusive: true }, /partitions already consumes each partition exclusively; drop exclusive/],
    [{ partitions: { count: 4 }, maxAckPending: 10 }, /one unacknowledged message per partition \(max_ack_pending 1\)/],
    [{ partitions: { count: 4 }, deliverPolicy: 'last' }, /partitions supports deliverPolicy 'all' or 'new'/],
    [{ partitions: { count: 4, key: 0 } }, /partitions.key must be the 1-based index of a \* wildcard/],
    [{ partitions: { count: 4, key: [1, 1] } }, /partitions.key must be .* distinct/],
    [{ partitions: { count: 4, key: '1' as never } }, /partitions.key must be/],
    [{ partitions: { count: 4, memberTtlMs: 500 } }, /partitions.memberTtlMs must be at least 1500/],
    [{ partitions: { count: 4, pinnedTtlMs: 1_000 } }, /partitions.pinnedTtlMs must be at least 3000/],
  ])('refuses %j at startup with a clear error', (options, message) => {
    expect(() => resolve(options)).toThrow(message);
  });

  it('a key index must name one of the subject\'s * wildcards', () => {
    expect(partitionKeyWildcards('orders.*.created', [], fail)).toEqual([1]);
    expect(partitionKeyWildcards('orders.*.*.created', [], fail)).toEqual([1, 2]);
    expect(partitionKeyWildcards('orders.*.*.created', [2], fail)).toEqual([2]);
    expect(() => partitionKeyWildcards('orders.*.created', [2], fail)).toThrow('partitions.key 2 is out of range: "orders.*.created" has 1 * wildcard(s), numbered from 1');
    expect(() => partitionKeyWildcards('orders.created', [], fail)).toThrow('"orders.created" has none');
    expect(() => partitionKeyWildcards('orders.>', [], fail)).toThrow('a trailing > cannot be a key');
  });
});

describe('partition transform and names', () => {
  it('prefixes the subject with the partition of its key tokens, as orbit.go writes it', () => {
    expect(partitionTransform('orders.*.created', 12, [1])).toEqual({ src: 'orders.*.created', dest: '{{Partition(12,1)}}.orders.{{Wildcard(1)}}.created' });
    expect(partitionTransform('t.*.*.>', 3, [1, 2])).toEqual({ src: 't.*.*.>', dest: '{{Partition(3,1,2)}}.t.{{Wildcard(1)}}.{{Wildcard(2)}}.>' });
    expect(partitionStreamName('ORDERS', 'billing')).toBe('ORDERS-billing');
  });
});

describe('partition assignment', () => {
  const members = (n: number) => Array.from({ length: n }, (_, i) => `host-${1000 + i}-abc${i}`);
  const flat = (a: Map<string, number[]>) => [...a.values()].flat().sort((x, y) => x - y);

  it('gives every partition to exactly one member, the shares differing by one at most', () => {
    for (const count of [1, 5, 12, 64]) {
      for (const n of [1, 2, 3, 4, 7]) {
        const a = assignPartitions(count, members(n));
        expect(flat(a)).toEqual([...Array(count).keys()]);
        const sizes = [...a.values()].map((p) => p.length);
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      }
    }
  });

  it('is the same on every instance whatever order it saw the members in', () => {
    const m = members(4);
    expect(assignPartitions(12, [...m].reverse())).toEqual(assignPartitions(12, m));
  });

  it('a member joining takes partitions mostly from the others\' surplus: fewer move than round-robin would move', () => {
    const before = assignPartitions(48, members(3));
    const after = assignPartitions(48, members(4));
    const owner = (a: Map<string, number[]>, p: number) => [...a].find(([, ps]) => ps.includes(p))![0];
    const moved = [...Array(48).keys()].filter((p) => owner(before, p) !== owner(after, p)).length;
    // The joiner must take 12; round-robin over sorted members moves 36 of 48 here.
    expect(moved).toBeLessThan(30);
  });

  it('more members than partitions: the extra members get none', () => {
    const a = assignPartitions(2, members(3));
    expect(flat(a)).toEqual([0, 1]);
    expect([...a.values()].filter((p) => p.length === 0)).toHaveLength(1);
  });
});
