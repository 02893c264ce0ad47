// A service in its own process, for the consumer-crash and graceful-stop scenarios and the
// exactly-once takeover test: one durable handler (at-least-once unless `delivery` says
// otherwise) on the built package (dist), configured by WORKER_CONFIG (JSON). Every handler
// call appends "start <id> <delivery> <epoch ms>" when it begins and "done ..." after its side
// effect, before it returns (i.e. before the ack), so the parent can tell, after a
// SIGKILL or SIGTERM, which messages were in flight and which were finished.
import 'reflect-metadata';
import { appendFileSync } from 'node:fs';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventContext, JetStreamModule, OnEvent } from '../../../dist/index.js';

const config = JSON.parse(process.env.WORKER_CONFIG ?? '{}');
const { servers, subject, durable, out, ackWaitMs, concurrency, shutdownTimeoutMs, minHandlerMs, maxHandlerMs, delivery, batch, exclusive, partitions, clockSkewMs, failFirstDelivery, bucket } = config;

// A machine whose clock runs off the others' (exactly-once lease tests): this process's wall
// clock, as Date.now() reads it, is shifted; timers are not.
if (clockSkewMs) {
  const realNow = Date.now;
  Date.now = () => realNow() + clockSkewMs;
}

function line(kind, id, ctx) {
  appendFileSync(out, `${kind} ${id} ${ctx.deliveryCount} ${Date.now()}\n`);
}

/** Deterministic per id, so a rerun of the same ids takes the same time. */
function handlerMs(id) {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return minHandlerMs + (h % (maxHandlerMs - minHandlerMs + 1));
}

class Worker {
  async handle(payload, ctx) {
    if (batch) return this.handleBatch(payload, ctx);
    line('start', payload.id, ctx);
    await new Promise((resolve) => setTimeout(resolve, handlerMs(payload.id)));
    if (failFirstDelivery && ctx.deliveryCount === 1) {
      line('fail', payload.id, ctx);
      throw new Error('failing the first delivery, as configured');
    }
    line('done', payload.id, ctx);
  }

  // `batch` set: one call per batch (a bulk insert), its lines written for every message.
  async handleBatch(payloads, batch) {
    batch.items.forEach((m) => line('start', m.payload.id, m.context));
    await new Promise((resolve) => setTimeout(resolve, handlerMs(payloads[0].id)));
    batch.items.forEach((m) => line('done', m.payload.id, m.context));
  }
}
Reflect.decorate(
  [OnEvent(subject, { durable, concurrency, ackWaitMs, ...(delivery ? { delivery } : {}), ...(batch ? { batch } : {}), ...(exclusive ? { exclusive } : {}), ...(partitions ? { partitions } : {}) }), Reflect.metadata('design:paramtypes', [Object, EventContext])],
  Worker.prototype,
  'handle',
  Object.getOwnPropertyDescriptor(Worker.prototype, 'handle'),
);
Reflect.decorate([Injectable()], Worker);

class WorkerModule {}
Reflect.decorate([Module({ imports: [JetStreamModule.forRoot({ servers, shutdownTimeoutMs, ...(bucket ? { idempotency: { bucket } } : {}) })], providers: [Worker] })], WorkerModule);

const app = await NestFactory.createApplicationContext(WorkerModule, { logger: ['error', 'warn', 'log'] });
app.enableShutdownHooks();
await app.init();
process.stdout.write('WORKER READY\n');
