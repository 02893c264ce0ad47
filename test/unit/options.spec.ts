import { InvalidOptionsError } from '../../lib/index.js';
import { resolveModuleOptions } from '../../lib/options/resolve-module-options.js';
import { resolveHandlerOptions } from '../../lib/discovery/resolve-handler-options.js';

describe('resolveModuleOptions', () => {
  it('defaults servers to NATS_URL, then to the local server', () => {
    expect(resolveModuleOptions({}, {}).servers).toEqual(['nats://127.0.0.1:4222']);
    expect(resolveModuleOptions({}, { NATS_URL: 'nats://a:1,nats://b:2' }).servers).toEqual(['nats://a:1', 'nats://b:2']);
    expect(resolveModuleOptions({ servers: 'nats://x:3' }, { NATS_URL: 'nats://a:1' }).servers).toEqual(['nats://x:3']);
    expect(resolveModuleOptions(undefined, {}).shutdownTimeoutMs).toBe(10_000);
  });

  it.each([
    [{ servers: [] }, /servers must be a non-empty/],
    [{ servers: [''] }, /servers must be a non-empty/],
    [{ shutdownTimeoutMs: -1 }, /shutdownTimeoutMs must be an integer >= 0/],
    [{ publishTimeoutMs: 0 }, /publishTimeoutMs must be an integer >= 1/],
    [{ publishTimeoutMs: 1.5 }, /publishTimeoutMs/],
    [{ streams: [{ name: 'a.b', subjects: ['x'] }] }, /streams\[0\]\.name/],
    [{ streams: [{ name: 'S', subjects: [] }] }, /Stream "S": subjects must be a non-empty array/],
    [{ streams: [{ name: 'S', subjects: ['a..b'] }] }, /Stream "S": Invalid subject "a..b"/],
  ])('rejects %p', (options, message) => {
    expect(() => resolveModuleOptions(options as never, {})).toThrow(InvalidOptionsError);
    expect(() => resolveModuleOptions(options as never, {})).toThrow(message);
  });

  it('keeps validation on with forbidUnknownValues off unless told otherwise', () => {
    expect(resolveModuleOptions({}, {}).validation).toEqual({ forbidUnknownValues: false });
    expect(resolveModuleOptions({ validation: false }, {}).validation).toBe(false);
    expect(resolveModuleOptions({ validation: { whitelist: true } }, {}).validation).toEqual({ forbidUnknownValues: false, whitelist: true });
  });
});

describe('resolveHandlerOptions: inbox', () => {
  it('makes an inbox handler exactly-once, whatever the module default, and accepts an explicit exactly-once', () => {
    expect(resolveHandlerOptions('A.m', { delivery: 'at-most-once' }, { durable: 'd', inbox: true })).toMatchObject({ inbox: true, delivery: 'exactly-once' });
    expect(resolveHandlerOptions('A.m', {}, { durable: 'd', inbox: true, delivery: 'exactly-once' })).toMatchObject({ inbox: true, delivery: 'exactly-once' });
    expect(resolveHandlerOptions('A.m', {}, { durable: 'd', inbox: false })).toMatchObject({ inbox: false, delivery: 'at-least-once' });
  });

  it.each([
    [{}, { inbox: true }, /inbox needs a durable consumer/],
    [{}, { durable: 'd', inbox: true, delivery: 'at-most-once' }, /cannot be combined with delivery: 'at-most-once'/],
    [{}, { durable: 'd', inbox: 'yes' }, /inbox must be a boolean, got "yes"/],
    [{ inbox: true }, { durable: 'd' }, /inbox is set per handler/],
  ])('refuses defaults %p with options %p', (defaults, options, message) => {
    expect(() => resolveHandlerOptions('A.m', defaults as never, options as never)).toThrow(InvalidOptionsError);
    expect(() => resolveHandlerOptions('A.m', defaults as never, options as never)).toThrow(message);
  });
});

describe('resolveHandlerOptions', () => {
  it('applies built-in defaults: ordered, ephemeral from new, 30 s ack wait', () => {
    expect(resolveHandlerOptions('A.m', {}, {})).toEqual({
      connection: 'default',
      durable: undefined,
      stream: undefined,
      concurrency: 1,
      prefetch: 32,
      deliverPolicy: 'new',
      ackWaitMs: 30_000,
      maxAckPending: undefined,
      delivery: 'at-least-once',
      retry: { enabled: true, maxAttempts: 5, backoff: 'exponential', initialDelayMs: 1_000, maxDelayMs: 60_000, jitter: true },
      retryable: undefined,
      // Ephemeral handlers (live views) do not park failures by default; durables do.
      dlq: false,
      orderBy: undefined,
      inbox: false,
      timeoutMs: undefined,
    });
    expect(resolveHandlerOptions('A.m', {}, { durable: 'd' }).dlq).toBe(true);
  });

  it('resolves retry options and rejects contradictions', () => {
    expect(resolveHandlerOptions('A.m', {}, { retry: false }).retry).toMatchObject({ enabled: false, maxAttempts: 1 });
    expect(resolveHandlerOptions('A.m', {}, { retry: { maxAttempts: 2, backoff: [10, 20] } }).retry).toMatchObject({
      maxAttempts: 2,
      backoff: [10, 20],
    });
    expect(() => resolveHandlerOptions('A.m', {}, { retry: { initialDelayMs: 5_000, maxDelayMs: 1_000 } })).toThrow(/maxDelayMs/);
    expect(() => resolveHandlerOptions('A.m', {}, { retry: { backoff: [] } })).toThrow(/backoff list/);
    expect(() => resolveHandlerOptions('A.m', {}, { retry: { backoff: 'linear' as never } })).toThrow(/retry.backoff/);
    expect(() => resolveHandlerOptions('A.m', {}, { retry: { maxAttempts: 0 } })).toThrow(/retry.maxAttempts/);
    expect(() => resolveHandlerOptions('A.m', {}, { delivery: 'twice' as never })).toThrow(/delivery must be one of/);
    expect(() => resolveHandlerOptions('A.m', {}, { dlq: 'dlq.*' })).toThrow(/concrete subject/);
    expect(() => resolveHandlerOptions('A.m', {}, { dlq: { stream: 'a.b' } })).toThrow(/dlq.stream/);
    expect(() => resolveHandlerOptions('A.m', {}, { orderBy: 'key' as never })).toThrow(/orderBy/);
    expect(() => resolveHandlerOptions('A.m', {}, { retryable: true as never })).toThrow(/retryable/);
  });

  it('durables replay everything by default; prefetch follows concurrency', () => {
    const r = resolveHandlerOptions('A.m', {}, { durable: 'd', concurrency: 64 });
    expect(r.deliverPolicy).toBe('all');
    expect(r.prefetch).toBe(128);
  });

  it('module defaults apply but never a default durable', () => {
    const r = resolveHandlerOptions('A.m', { concurrency: 4, durable: 'shared', ackWaitMs: 5_000 }, {});
    expect(r.concurrency).toBe(4);
    expect(r.ackWaitMs).toBe(5_000);
    expect(r.durable).toBeUndefined();
  });

  it.each([
    [{ concurrency: 0 }, /concurrency must be an integer >= 1/],
    [{ concurrency: 2.5 }, /concurrency/],
    [{ durable: 'a.b' }, /durable must match/],
    [{ durable: 'has space' }, /durable must match/],
    [{ stream: 'S.*' }, /stream must be a stream name/],
    [{ ackWaitMs: -5 }, /ackWaitMs/],
    [{ maxAckPending: 0 }, /maxAckPending/],
    [{ deliverPolicy: 'first' }, /deliverPolicy must be one of/],
    [{ deliverPolicy: { startSequence: 0 } }, /startSequence must be an integer >= 1/],
    [{ deliverPolicy: { startTime: new Date('nope') } }, /startTime must be a valid Date/],
    [{ deliverPolicy: { other: 1 } }, /not recognised/],
  ])('rejects %p naming the handler', (options, message) => {
    expect(() => resolveHandlerOptions('Billing.onCreated', {}, options as never)).toThrow(InvalidOptionsError);
    expect(() => resolveHandlerOptions('Billing.onCreated', {}, options as never)).toThrow(/@OnEvent on Billing\.onCreated/);
    expect(() => resolveHandlerOptions('Billing.onCreated', {}, options as never)).toThrow(message);
  });

  it('accepts maxAckPending -1 (unlimited)', () => {
    expect(resolveHandlerOptions('A.m', {}, { maxAckPending: -1 }).maxAckPending).toBe(-1);
  });
});
