export default async function globalTeardown() {
  await globalThis.__NATS_TEST_SERVER__?.stop();
}
