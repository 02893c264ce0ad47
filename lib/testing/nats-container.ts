import type { NatsTestServer } from './nats-test-server.js';

// The testcontainers fallback: used only where Docker is reachable and no binary was found.

interface ContainerLike {
  getHost(): string;
  getMappedPort(port: number): number;
  stop(): Promise<unknown>;
}

export async function startContainer(note: string): Promise<NatsTestServer> {
  const moduleName = 'testcontainers';
  let tc: { GenericContainer: new (image: string) => { withCommand(c: string[]): { withExposedPorts(p: number): { start(): Promise<ContainerLike> } } } };
  try {
    tc = (await import(moduleName)) as typeof tc;
  } catch (err) {
    throw new Error(`Docker is reachable but the "testcontainers" package is not installed (${(err as Error).message}); npm i -D testcontainers`);
  }
  const container = await new tc.GenericContainer(process.env.NATS_IMAGE ?? 'nats:2.11').withCommand(['-js']).withExposedPorts(4222).start();
  const url = `nats://${container.getHost()}:${container.getMappedPort(4222)}`;
  return {
    url,
    kind: 'container',
    note: `${note}: started at ${url}`,
    stop: async () => void (await container.stop()),
  };
}
