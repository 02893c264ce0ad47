// One instance of a partitioned group in its own process, for the `partitions` workload: a 5 ms
// handler, each handled message journaled as "<key> <n> <epoch ms>" (buffered, written with the progress
// count every 50 ms and at exit), the partitions it owns echoed from the module's log.
import 'reflect-metadata';
import { appendFileSync } from 'node:fs';
import { Injectable, Module, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { JetStreamModule, OnEvent } from '../../lib/index.js';

const { servers, subject, durable, concurrency, partitions, out } = JSON.parse(process.env.PARTITION_WORKER ?? '{}') as {
  servers: string;
  subject: string;
  durable: string;
  concurrency: number;
  partitions: number;
  out: string;
};

let pending: string[] = [];
let handled = 0;
function flush(): void {
  if (pending.length > 0) appendFileSync(out, pending.join(''));
  pending = [];
  const cpu = process.cpuUsage();
  process.stdout.write(`HANDLED ${handled} ${Math.round((cpu.user + cpu.system) / 1000)}\n`);
}

@Injectable()
class Worker {
  @OnEvent(subject, { durable, concurrency, dlq: false, partitions: { count: partitions, key: 1 } })
  async handle(payload: { k: number; n: number }): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 5));
    pending.push(`${payload.k} ${payload.n} ${Date.now()}\n`);
    handled++;
  }
}

// Forwards the module's assignment lines to the parent, which waits for the group to settle.
const logger: LoggerService = {
  log: (message: unknown) => {
    const m = /takes partition\(s\) (.*) of/.exec(String(message));
    const members = /(\d+) member\(s\)/.exec(String(message));
    if (m && members) process.stdout.write(`OWNS ${members[1]} ${m[1] === 'none' ? 0 : m[1].split(', ').length}\n`);
  },
  error: (message: unknown) => process.stderr.write(`${String(message)}\n`),
  warn: (message: unknown) => process.stderr.write(`${String(message)}\n`),
};

@Module({ imports: [JetStreamModule.forRoot({ servers })], providers: [Worker] })
class WorkerModule {}

const app = await NestFactory.createApplicationContext(WorkerModule, { logger });
setInterval(flush, 50);
process.once('SIGTERM', () => {
  void app.close().then(() => {
    flush();
    process.exit(0);
  });
});
process.stdout.write('READY\n');
