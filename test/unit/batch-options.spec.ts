import { resolveHandlerOptions } from '../../lib/discovery/resolve-handler-options.js';
import type { OnEventOptions } from '../../lib/index.js';

class Quote {
  symbol!: string;
}

const resolve = (options: OnEventOptions) => resolveHandlerOptions('Q.handle', {}, { durable: 'q', ...options });

describe('batch handler options', () => {
  it('resolves limits with a 50 ms default wait and keeps the payload class', () => {
    expect(resolve({ batch: { maxMessages: 100 } }).batch).toEqual({ maxMessages: 100, maxWaitMs: 50, payloadType: undefined });
    expect(resolve({ batch: { maxMessages: 1, maxWaitMs: 0, payloadType: Quote } }).batch).toEqual({ maxMessages: 1, maxWaitMs: 0, payloadType: Quote });
    expect(resolve({}).batch).toBeUndefined();
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
    [{ batch: { maxMessages: 10 }, delivery: 'exactly-once' }, /delivery 'at-least-once' only, got 'exactly-once'/],
    [{ batch: { maxMessages: 10 }, delivery: 'at-most-once' }, /delivery 'at-least-once' only, got 'at-most-once'/],
    [{ batch: { maxMessages: 10 }, orderBy: 'subject' }, /cannot be combined with orderBy/],
    [{ batch: { maxMessages: 10 }, timeoutMs: 1_000 }, /cannot be combined with timeoutMs/],
  ])('refuses %j at startup with a clear error', (options, message) => {
    expect(() => resolve(options)).toThrow(message);
  });
});
