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
  if (resolution.kind === 'external') {
    process.env.NATS_TEST_URL = resolution.url;
    return;
  }
  if (resolution.kind !== 'binary') {
    throw new Error(`${resolution.note}: the suite needs a nats-server binary (npm run nats:install) to kill and restart servers`);
  }
  const server = await NatsServerProcess.start({ binary: resolution.path });
  globalThis.__NATS_TEST_SERVER__ = server;
  process.env.NATS_TEST_URL = server.url;
  process.env.NATS_SERVER_BIN = resolution.path;
  console.log(`[nats-harness] shared server ${server.url} (pid ${server.pid})`);
}
