import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credsAuthenticator, nkeyAuthenticator } from '@nats-io/transport-node';
import { createUser as createNkeyUser } from '@nats-io/nkeys';
import {
  ConnectionFailedError,
  HandlerConfigurationError,
  PublishRejectedError,
  type JetStreamModuleOptions,
  type NatsConnectionOptions,
} from '../../lib/index.js';
import { NatsServerProcess, waitFor } from '../harness/index.js';
import { AppTracker, handlerClass } from '../integration/kit.js';
import { CapturingLogger } from '../support/test-app.js';
import { Tally } from './tally.js';
import { makeClientCert, makeJwtSetup, makeNkeyUser, makeTlsFiles, type JwtSetup, type NkeyUser, type TlsFiles } from './security-fixtures.js';

/**
 * Every way a production deployment authenticates, against real servers configured for it:
 * each connects, provisions a stream, publishes and handles a message. Wrong credentials fail
 * startup with the cause named and no secret in any log line; a denied publish or pull is a
 * clear, typed error rather than a timeout.
 */
const STREAM = 'SECURE';
const PASSWORDS = { alice: 'alice-Pw-7f3c2e', nopub: 'nopub-Pw-91ab4d', nopull: 'nopull-Pw-02cd77', noinbox: 'noinbox-Pw-5e6f10' };
const TOKEN = 'tok-3b9e1f-secret-token';

let dir: string;
let tls: TlsFiles;
let nkey: NkeyUser;
let jwt: JwtSetup;
let tlsServer: NatsServerProcess;
let tokenServer: NatsServerProcess;
let jwtServer: NatsServerProcess;
let mtlsServer: NatsServerProcess;
let client: { certFile: string; keyFile: string };
const apps = new AppTracker();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'jetstream-security-'));
  tls = makeTlsFiles(dir);
  nkey = makeNkeyUser();
  jwt = await makeJwtSetup(dir);
  client = makeClientCert(dir);
  [tlsServer, tokenServer, jwtServer, mtlsServer] = await Promise.all([
    NatsServerProcess.start({
      config: [
        'tls {',
        `  cert_file: "${tls.certFile}"`,
        `  key_file: "${tls.keyFile}"`,
        `  ca_file: "${tls.caFile}"`,
        '}',
        'authorization {',
        '  users = [',
        `    { user: alice, password: "${PASSWORDS.alice}" }`,
        `    { nkey: ${nkey.publicKey} }`,
        // Everything but one subject family: the denial is the only thing this user lacks.
        `    { user: nopub, password: "${PASSWORDS.nopub}", permissions: { publish: { allow: [">"], deny: ["secure.secret.>"] } } }`,
        // May provision and publish, but not pull from the one consumer "pulled".
        `    { user: nopull, password: "${PASSWORDS.nopull}", permissions: { publish: { allow: [">"], deny: ["$JS.API.CONSUMER.MSG.NEXT.${STREAM}.pulled"] } } }`,
        // May not subscribe to reply inboxes: no request (JetStream API included) can work.
        `    { user: noinbox, password: "${PASSWORDS.noinbox}", permissions: { subscribe: { deny: ["_INBOX.>"] } } }`,
        '  ]',
        '}',
      ].join('\n'),
    }),
    NatsServerProcess.start({ config: `authorization { token: "${TOKEN}" }\n` }),
    NatsServerProcess.start({ config: `${jwt.serverConfig}\n` }),
    // Mutual TLS: the server requires a client certificate signed by the CA.
    NatsServerProcess.start({
      config: ['tls {', `  cert_file: "${tls.certFile}"`, `  key_file: "${tls.keyFile}"`, `  ca_file: "${tls.caFile}"`, '  verify: true', '}'].join('\n'),
    }),
  ]);
});

afterAll(async () => {
  await apps.closeAll();
  await Promise.all([tlsServer?.stop(), tokenServer?.stop(), jwtServer?.stop(), mtlsServer?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await apps.closeAll();
});

function secrets(): string[] {
  return [...Object.values(PASSWORDS), TOKEN, nkey.seedText, jwt.userSeed, 'wrong-Pw-000', 'wrong-token-111'];
}

function expectNoSecret(text: string): void {
  for (const secret of secrets()) expect(text).not.toContain(secret);
}

function options(server: NatsServerProcess, connection: NatsConnectionOptions): JetStreamModuleOptions {
  return { servers: server.url, connection, streams: [{ name: STREAM, subjects: ['secure.>'] }] };
}

/**
 * An app with one handler on `secure.<name>`: starts, publishes, and waits for the call. The
 * tally counts by stream sequence: published when the stream confirmed, handled when the call ran.
 */
async function roundTrip(name: string, server: NatsServerProcess, connection: NatsConnectionOptions, tally: Tally): Promise<CapturingLogger> {
  const received: unknown[] = [];
  const subject = `secure.${name}`;
  const Handler = handlerClass(`Secure_${name}`, subject, { durable: name }, (payload, ctx) => {
    received.push(payload);
    tally.handle(String(ctx.sequence));
  });
  const logger = new CapturingLogger();
  const app = await apps.start(options(server, connection), [Handler], logger);
  const result = await app.publisher.publish(subject, { via: name });
  expect(result.stream).toBe(STREAM);
  tally.confirmPublished(String(result.seq));
  await waitFor(() => received.length === 1, { timeoutMs: 10_000, message: `${name}: message handled` });
  expect(received).toEqual([{ via: name }]);
  await app.close();
  expectNoSecret(logger.text());
  return logger;
}

describe('authentication methods', () => {
  it.each([
    ['tls-user-password', () => ({ server: tlsServer, connection: { tls: { caFile: tls.caFile }, user: 'alice', pass: PASSWORDS.alice } })],
    ['tls-nkey', () => ({ server: tlsServer, connection: { tls: { caFile: tls.caFile }, authenticator: nkeyAuthenticator(nkey.seed) } })],
    ['token', () => ({ server: tokenServer, connection: { token: TOKEN } })],
    ['creds-jwt', () => ({ server: jwtServer, connection: { authenticator: credsAuthenticator(jwt.creds) } })],
    ['mutual-tls', () => ({ server: mtlsServer, connection: { tls: { caFile: tls.caFile, ...client } } })],
  ] as Array<[string, () => { server: NatsServerProcess; connection: NatsConnectionOptions }]>)(
    '%s: connects, provisions, publishes and handles',
    async (name, setup) => {
      const { server, connection } = setup();
      const started = performance.now();
      const tally = new Tally();
      const logger = await roundTrip(name.replace(/-/g, '_'), server, connection, tally);
      expect(logger.find(/Connected to NATS/)).toHaveLength(1);
      expect(tally.lost()).toEqual([]);
      tally.record(`security: ${name}`, 'connected and handled', { measured: `${Math.round(performance.now() - started)} ms` });
    },
  );
});

describe('wrong credentials', () => {
  const stranger = createNkeyUser();
  it.each([
    ['wrong password', () => ({ server: tlsServer, connection: { tls: { caFile: tls.caFile }, user: 'alice', pass: 'wrong-Pw-000' } }), /Authorization Violation/i],
    ['password in the URL', () => ({ server: tlsServer, url: `nats://alice:wrong-Pw-000@127.0.0.1:${tlsServer.port}`, connection: { tls: { caFile: tls.caFile } } }), /Authorization Violation/i],
    ['wrong token', () => ({ server: tokenServer, connection: { token: 'wrong-token-111' } }), /Authorization Violation/i],
    ['unknown nkey', () => ({ server: tlsServer, connection: { tls: { caFile: tls.caFile }, authenticator: nkeyAuthenticator(stranger.getSeed()) } }), /Authorization Violation/i],
    ['no credentials', () => ({ server: jwtServer, connection: {} }), /Authorization Violation/i],
    ['untrusted server certificate', () => ({ server: tlsServer, connection: { tls: {}, user: 'alice', pass: PASSWORDS.alice } }), /certificate/i],
    // The server drops the client after the handshake, so this one can only end by the connect timeout (shortened here).
    ['mutual TLS without a client certificate', () => ({ server: mtlsServer, connection: { tls: { caFile: tls.caFile }, timeout: 2_000 } }), /timeout \(with TLS but no client certificate: .*tls verify.*certFile/],
  ] as Array<[string, () => { server: NatsServerProcess; url?: string; connection: NatsConnectionOptions }, RegExp]>)(
    '%s: startup fails naming the cause, with no secret logged',
    async (name, setup, cause) => {
      const { server, url, connection: given } = setup();
      // A long connect timeout, so that "a refusal, not a timeout" is told apart by a wide margin
      // on a loaded machine (the one case that can only end by a timeout sets its own).
      const connection = { timeout: 30_000, ...given };
      const logger = new CapturingLogger();
      const Handler = handlerClass('Never', 'secure.never', { durable: 'never' }, () => undefined);
      const started = performance.now();
      const error = await apps.start({ ...options(server, connection), servers: url ?? server.url }, [Handler], logger).then(
        () => undefined,
        (err: unknown) => err,
      );
      const ms = performance.now() - started;
      expect(error).toBeInstanceOf(ConnectionFailedError);
      const message = (error as Error).message;
      expect(message).toMatch(/^Could not connect to NATS at /);
      expect(message).toMatch(cause);
      if (url) expect(message).toContain('nats://***@127.0.0.1');
      expectNoSecret(`${message}\n${String((error as Error).cause ?? '')}\n${logger.text()}`);
      // A refusal, not a timeout: far sooner than the 30 s connect timeout.
      if (connection.timeout === 30_000) expect(ms).toBeLessThan(15_000);
      // Nothing was published: the app never started (the tally stays empty, and says so).
      new Tally().record(`security: ${name}`, `startup refused: ${message.replace(/^Could not connect to NATS at \S+: /, '')}`, { measured: `${Math.round(ms)} ms` });
    },
  );
});

describe('permissions', () => {
  it('a publish the user may not make fails at once with a typed error naming the subject', async () => {
    const logger = new CapturingLogger();
    const tally = new Tally();
    const Handler = handlerClass('Open', 'secure.open', { durable: 'open' }, (_payload, ctx) => tally.handle(String(ctx.sequence)));
    // A publish timeout far above the bound below: a denial must not be mistaken for one.
    const app = await apps.start({ ...options(tlsServer, { tls: { caFile: tls.caFile }, user: 'nopub', pass: PASSWORDS.nopub }), publishTimeoutMs: 30_000 }, [Handler], logger);
    const allowed = await app.publisher.publish('secure.open', { ok: true });
    expect(allowed.stream).toBe(STREAM);
    tally.confirmPublished(String(allowed.seq));
    const started = performance.now();
    const error = await app.publisher.publish('secure.secret.plans', { ok: false }).then(
      () => undefined,
      (err: unknown) => err,
    );
    const ms = performance.now() - started;
    expect(error).toBeInstanceOf(PublishRejectedError);
    expect((error as PublishRejectedError).subject).toBe('secure.secret.plans');
    expect((error as Error).message).toMatch(/Publish to "secure\.secret\.plans" was rejected: .*Permissions Violation for Publish to "secure\.secret\.plans"/);
    // Not the publish timeout (30 s here): the server's -ERR answers the request.
    expect(ms).toBeLessThan(15_000);
    // The connection survives a permission error: the next allowed publish goes through.
    const after = await app.publisher.publish('secure.open', { ok: 2 });
    expect(after.stream).toBe(STREAM);
    tally.confirmPublished(String(after.seq));
    // The denied message never reached the stream: the allowed ones are all it holds.
    expect(after.seq).toBe(allowed.seq + 1);
    await waitFor(() => tally.complete(), { timeoutMs: 10_000, message: `allowed publishes handled: ${tally.describe()}` });
    expect(tally.lost()).toEqual([]);
    expectNoSecret(logger.text());
    tally.record('security: publish denied', 'PublishRejectedError for the denied subject; the allowed publishes around it were handled', { measured: `rejected in ${Math.round(ms)} ms` });
  });

  it('a consumer the user may not pull from fails startup naming the subject', async () => {
    const logger = new CapturingLogger();
    const Handler = handlerClass('Pulled', 'secure.pulled', { durable: 'pulled' }, () => undefined);
    const started = performance.now();
    const error = await apps.start(options(tlsServer, { tls: { caFile: tls.caFile }, user: 'nopull', pass: PASSWORDS.nopull }), [Handler], logger).then(
      () => undefined,
      (err: unknown) => err,
    );
    const ms = performance.now() - started;
    expect(error).toBeInstanceOf(HandlerConfigurationError);
    expect((error as Error).message).toMatch(/Pulled\.handle/);
    expect((error as Error).message).toMatch(/permission/i);
    expect((error as Error).message).toContain(`$JS.API.CONSUMER.MSG.NEXT.${STREAM}.pulled`);
    // Refused at startup, not left to wait: the bound only has to tell that from a hang.
    expect(ms).toBeLessThan(15_000);
    expectNoSecret(logger.text());
    new Tally().record('security: pull denied', 'startup refused: HandlerConfigurationError naming the subject', { measured: `${Math.round(ms)} ms` });
  });

  it('a user who may not subscribe to reply inboxes fails startup naming the subscription', async () => {
    const logger = new CapturingLogger();
    const Handler = handlerClass('Inboxed', 'secure.inboxed', { durable: 'inboxed' }, () => undefined);
    const error = await apps.start(options(tlsServer, { tls: { caFile: tls.caFile }, user: 'noinbox', pass: PASSWORDS.noinbox }), [Handler], logger).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ConnectionFailedError);
    expect((error as Error).message).toMatch(/connected, but the NATS user may not use JetStream \(.*Permissions Violation for Subscription to "_INBOX\./);
    expect((error as Error).message).not.toMatch(/start nats-server with -js/);
    expectNoSecret(logger.text());
    new Tally().record('security: inbox subscribe denied', 'startup refused: ConnectionFailedError naming the subscription');
  });
});
