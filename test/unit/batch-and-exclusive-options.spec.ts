import { resolveHandlerOptions } from '../../lib/discovery/resolve-handler-options.js';
import type { OnEventOptions } from '../../lib/index.js';

class Quote {
  symbol!: string;
}

const standardSchema = { '~standard': { version: 1, vendor: 'test', validate: (value: unknown) => ({ value }) } } as const;

const resolve = (options: OnEventOptions) => resolveHandlerOptions('Q.handle', {}, { durable: 'q', ...options });

describe('batch handler options', () => {
  it('resolves limits with a 50 ms default wait and keeps the payload class', () => {
    expect(resolve({ batch: { maxMessages: 100 } }).batch).toEqual({ maxMessages: 100, maxWaitMs: 50, payloadType: undefined });
    expect(resolve({ batch: { maxMessages: 1, maxWaitMs: 0, payloadType: Quote } }).batch).toEqual({ maxMessages: 1, maxWaitMs: 0, payloadType: Quote });
    expect(resolve({}).batch).toBeUndefined();
  });

  it('takes exactly-once through the inbox, and a Standard Schema validating each message', () => {
    const withInbox = resolve({ batch: { maxMessages: 100 }, inbox: true });
    expect({ inbox: withInbox.inbox, delivery: withInbox.delivery, batch: withInbox.batch }).toEqual({
      inbox: true,
      delivery: 'exactly-once',
      batch: { maxMessages: 100, maxWaitMs: 50, payloadType: undefined },
    });
    expect(resolve({ batch: { maxMessages: 100 }, schema: standardSchema }).schema).toBe(standardSchema);
  });

  it('is never a module-wide default: that would change every handler’s signature', () => {
    expect(resolveHandlerOptions('Q.handle', { batch: { maxMessages: 5 } }, {}).batch).toBeUndefined();
  });

  it.each<[OnEventOptions, RegExp]>([
    [{ batch: {} as never }, /batch\.maxMessages is required/],
    [{ batch: { maxMessages: 0 } }, /batch\.maxMessages must be an integer >= 1/],
    [{ batch: { maxMessages: 10_001 } }, /at most 10000/],
    [{ batch: { maxMessages: 10, maxWaitMs: -1 } }, /batch\.maxWaitMs/],
    [{ batch: { maxMessages: 10, payloadType: 'Quote' as never } }, /payloadType must be a class/],
    [{ batch: 5 as never }, /batch must be/],
    [{ batch: { maxMessages: 10 }, delivery: 'exactly-once' }, /delivery 'at-least-once', or exactly-once through the inbox \(inbox: true\), got 'exactly-once'/],
    [{ batch: { maxMessages: 10 }, delivery: 'at-most-once' }, /delivery 'at-least-once', or exactly-once through the inbox \(inbox: true\), got 'at-most-once'/],
    [{ batch: { maxMessages: 10 }, inbox: true, delivery: 'at-most-once' }, /inbox is its own exactly-once delivery/],
    [{ batch: { maxMessages: 10, payloadType: Quote }, schema: standardSchema }, /batch\.payloadType and schema both validate each message/],
    [{ batch: { maxMessages: 10 }, orderBy: 'subject' }, /cannot be combined with orderBy/],
    [{ batch: { maxMessages: 10 }, timeoutMs: 1_000 }, /cannot be combined with timeoutMs/],
  ])('refuses %j at startup with a clear error', (options, message) => {
    expect(() => resolve(options)).toThrow(message);
  });
});

describe('exclusive handler options', () => {
  it('defaults to a 5 s pinned TTL, pulls expiring at a third of it, in the group "exclusive"', () => {
    expect(resolve({ exclusive: true }).exclusive).toEqual({ group: 'exclusive', pinnedTtlMs: 5_000, pullExpiresMs: 1_666 });
    expect(resolve({ exclusive: { pinnedTtlMs: 120_000 } }).exclusive).toEqual({ group: 'exclusive', pinnedTtlMs: 120_000, pullExpiresMs: 30_000 });
    expect(resolve({ exclusive: false }).exclusive).toBeUndefined();
  });

  it.each<[OnEventOptions, RegExp]>([
    [{ durable: undefined, exclusive: true }, /exclusive needs a durable/],
    [{ exclusive: true, concurrency: 4 }, /use concurrency 1 and no orderBy/],
    [{ exclusive: true, orderBy: 'subject' }, /use concurrency 1 and no orderBy/],
    [{ exclusive: true, maxAckPending: 100 }, /max_ack_pending 1/],
    [{ exclusive: true, batch: { maxMessages: 10 } }, /exclusive cannot be combined with batch/],
    [{ exclusive: { pinnedTtlMs: 1_000 } }, /pinnedTtlMs must be at least 3000/],
    [{ exclusive: 'yes' as never }, /exclusive must be true or/],
  ])('refuses %j at startup with a clear error', (options, message) => {
    expect(() => resolve(options)).toThrow(message);
  });
});
