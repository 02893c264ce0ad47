// The built package's own testing helpers (scripts/run-tests.sh builds first): jest loads
// global setup outside its TypeScript transform.
import { NatsServerProcess, resolveNatsServer } from '../../dist/testing/index.js';

/**
 * One shared server for the whole run; tests that kill, restart or cluster servers start their
 * own. Plain ESM because jest loads global setup outside its module transform.
 */
export default async function globalSetup() {
  const resolution = resolveNatsServer();
  console.log(`\n[nats-harness] ${resolution.note}`);
  // NATS_TEST_URL as given: every spec's startNatsTestServer() and testNatsUrl() use it.
  if (resolution.kind === 'external') return;
  if (resolution.kind !== 'binary') {
    throw new Error(`${resolution.note}: the suite needs a nats-server binary (npm run nats:install) to kill and restart servers`);
  }
  const server = await NatsServerProcess.start({ binary: resolution.path });
  globalThis.__NATS_TEST_SERVER__ = server;
  // Workers inherit these: they share this server, and start the same binary when they need
  // a server of their own (kill, restart, cluster).
  process.env.NATS_TEST_URL = server.url;
  process.env.NATS_SERVER_BIN = resolution.path;
  process.env.NATS_HARNESS_MANAGED = '1';
  console.log(`[nats-harness] shared server ${server.url} (pid ${server.pid})`);
}
