import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { existsSync } from 'node:fs';
import {
  isSupportedVersion,
  managedServers,
  NatsServerProcess,
  parseNatsServerVersion,
  resolveNatsServer,
  startCluster,
  testNatsUrl,
} from './index.js';

describe('nats-server resolution', () => {
  it('parses versions and holds the 2.10 floor', () => {
    expect(parseNatsServerVersion('nats-server: v2.15.1')).toMatchObject({ major: 2, minor: 15, patch: 1 });
    expect(parseNatsServerVersion('garbage')).toBeUndefined();
    expect(isSupportedVersion(parseNatsServerVersion('nats-server: v2.9.10')!)).toBe(false);
    expect(isSupportedVersion(parseNatsServerVersion('nats-server: v2.10.0')!)).toBe(true);
    expect(isSupportedVersion(parseNatsServerVersion('nats-server: v3.0.0')!)).toBe(true);
  });

  it('prefers NATS_TEST_URL, never takes the app’s NATS_URL, and refuses a binary older than 2.10 with a loud explanation', () => {
    expect(resolveNatsServer({ NATS_TEST_URL: 'nats://u:p@127.0.0.1:1' })).toMatchObject({ kind: 'external', url: 'nats://u:p@127.0.0.1:1' });
    expect(resolveNatsServer({ NATS_TEST_URL: 'nats://u:p@127.0.0.1:1' }).note).not.toContain('u:p');
    expect(resolveNatsServer({ NATS_URL: 'nats://127.0.0.1:1', NATS_SERVER_BIN: process.env.NATS_SERVER_BIN }).kind).not.toBe('external');
    if (existsSync('/usr/sbin/nats-server')) {
      // The machine's bookworm server is 2.9.10: it must be rejected, never used.
      const r = resolveNatsServer({ NATS_SERVER_BIN: '/usr/sbin/nats-server', PATH: '/nonexistent' });
      expect(r.kind).toBe('binary');
      if (r.kind === 'binary') {
        expect(r.path).not.toBe('/usr/sbin/nats-server');
        expect(isSupportedVersion(r.version)).toBe(true);
      }
    }
  });
});

describe('NatsServerProcess', () => {
  const managed = managedServers();
  (managed ? it : it.skip)('starts on a random loopback port, survives kill -9 with a file store, and stops', async () => {
    const server = await NatsServerProcess.start();
    try {
      expect(server.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
      let nc = await connect({ servers: server.url });
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'H', subjects: ['h.>'] });
      await jetstream(nc).publish('h.1', 'kept');
      await nc.close();

      await server.kill('SIGKILL');
      expect(server.running).toBe(false);
      await server.restart();

      nc = await connect({ servers: server.url });
      const stored = await (await jetstreamManager(nc)).streams.getMessage('H', { seq: 1 });
      expect(stored?.string()).toBe('kept');
      await nc.close();
    } finally {
      await server.stop();
    }
    expect(server.running).toBe(false);
    expect(existsSync(server.storeDir)).toBe(false);
  });

  (managed ? it : it.skip)('runs a 3-node JetStream cluster with an R3 stream', async () => {
    const cluster = await startCluster(3);
    try {
      const nc = await connect({ servers: cluster.urls });
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.add({ name: 'R3', subjects: ['r3.>'], num_replicas: 3 });
      expect(info.config.num_replicas).toBe(3);
      const ack = await jetstream(nc).publish('r3.x', 'replicated');
      expect(ack.seq).toBe(1);
      await nc.close();
    } finally {
      await cluster.stop();
    }
  }, 150_000);

  it('the shared server of this run answers', async () => {
    const nc = await connect({ servers: testNatsUrl() });
    expect(parseNatsServerVersion(`v${nc.info!.version}`)).toBeDefined();
    expect(isSupportedVersion(parseNatsServerVersion(`v${nc.info!.version}`)!)).toBe(true);
    await nc.close();
  });
});
