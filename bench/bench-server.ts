import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A throwaway nats-server for one benchmark run: loopback, random port, temp store. */
export async function startBenchServer(binary: string): Promise<{ url: string; pid: number | undefined; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'nats-bench-'));
  const child: ChildProcess = spawn(binary, ['-a', '127.0.0.1', '-p', '-1', '-js', '-sd', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    let port = 0;
    const timer = setTimeout(() => reject(new Error(`nats-server not ready:\n${out}`)), 15_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /Listening for client connections on [^\s]*:(\d+)/.exec(out);
      if (m) port = Number(m[1]);
      if (port && out.includes('Server is ready')) {
        clearTimeout(timer);
        resolve(`nats://127.0.0.1:${port}`);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`nats-server exited (${code}):\n${out}`)));
  });
  return {
    url,
    pid: child.pid,
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
