// Nest 11 + @nestjs/microservices (CommonJS): an @EventPattern handler's TerminalError reaches the
// engine as thrown (dead-lettered at once, not retried as Nest's "Internal server error"), and a
// @MessagePattern subject that a stream captures is refused at startup. Needs NATS_URL.
'use strict';
const { ConsoleLogger, Controller, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { EventPattern, MessagePattern } = require('@nestjs/microservices');
const { lastValueFrom } = require('rxjs');
const { TerminalError } = require('nestjs-jetstream');
const { JetStreamClient, JetStreamServer, RequestPatternCapturedError } = require('nestjs-jetstream/transport');

class Capture extends ConsoleLogger {
  constructor() {
    super();
    this.lines = [];
  }
  log() {}
  warn(message) {
    this.lines.push(`warn ${message}`);
  }
  error(message) {
    this.lines.push(`error ${message}`);
  }
}

function controller(decorator, method, body) {
  class C {}
  C.prototype[method] = body;
  Reflect.decorate([decorator], C.prototype, method, Object.getOwnPropertyDescriptor(C.prototype, method));
  Reflect.decorate([Controller()], C);
  class M {}
  Reflect.decorate([Module({ controllers: [C] })], M);
  return M;
}

async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

module.exports = async function checkTransport() {
  const servers = process.env.NATS_URL;
  const streams = [{ name: 'COMPAT_T', subjects: ['compat_t.>'] }];
  let calls = 0;
  const Events = controller(
    EventPattern('compat_t.fail', { durable: 'compat-transport', dlq: { stream: 'COMPAT_T_DLQ', subject: 'compat_t_dlq.letters' } }),
    'fail',
    function () {
      calls++;
      throw new TerminalError('never valid');
    },
  );
  const logger = new Capture();
  const app = await NestFactory.createMicroservice(Events, { strategy: new JetStreamServer({ servers, streams }), logger });
  await app.listen();
  const client = new JetStreamClient({ servers });
  try {
    await lastValueFrom(client.emit('compat_t.fail', { id: 1 }));
    await waitFor(() => logger.lines.some((l) => /reason terminal\): TerminalError: never valid/.test(l)), 10_000, 'the dead-letter log line');
    if (calls !== 1) throw new Error(`TerminalError handler ran ${calls} times, expected once`);
  } finally {
    await client.close();
    await app.close();
  }

  const Requests = controller(MessagePattern('compat_t.lookup'), 'lookup', () => 'never');
  const refused = await NestFactory.createMicroservice(Requests, { strategy: new JetStreamServer({ servers, streams }), logger: new Capture() });
  const err = await refused.listen().then(() => undefined, (e) => e);
  await refused.close().catch(() => undefined);
  if (!(err instanceof RequestPatternCapturedError) || err.stream !== 'COMPAT_T') {
    throw new Error(`expected RequestPatternCapturedError naming COMPAT_T, got ${err}`);
  }
  return 'transport: TerminalError dead-lettered once, captured request subject refused';
};
