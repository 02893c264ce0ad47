import { NatsServerProcess, resolveNatsServer } from './nats-server.mjs';

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
  const server = await NatsServerProcess.start({ binary: resolution.path });
  globalThis.__NATS_TEST_SERVER__ = server;
  process.env.NATS_TEST_URL = server.url;
  process.env.NATS_SERVER_BIN = resolution.path;
  console.log(`[nats-harness] shared server ${server.url} (pid ${server.pid})`);
}
