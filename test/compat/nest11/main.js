// A CommonJS Nest 11 application: loads the ESM package through Node's require(esm) and runs a
// publish → @OnEvent round trip against the server in NATS_URL. Exits 0 on success.
'use strict';
require('reflect-metadata');
const { Injectable, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { IsString } = require('class-validator');
const { JetStreamModule, JetStreamPublisher, OnEvent, EventContext } = require('nestjs-jetstream');

class Ping {}
Reflect.decorate([IsString()], Ping.prototype, 'id');

let resolveHandled;
const handled = new Promise((resolve) => (resolveHandled = resolve));

class PingHandler {
  async onPing(ping, ctx) {
    resolveHandled({ isPing: ping instanceof Ping, id: ping.id, subject: ctx.subject, ctxOk: ctx instanceof EventContext });
  }
}
Reflect.decorate(
  [OnEvent('compat.ping', { durable: 'compat' }), Reflect.metadata('design:paramtypes', [Ping, EventContext])],
  PingHandler.prototype,
  'onPing',
  Object.getOwnPropertyDescriptor(PingHandler.prototype, 'onPing'),
);
Reflect.decorate([Injectable()], PingHandler);

class AppModule {}
Reflect.decorate(
  [Module({ imports: [JetStreamModule.forRoot({ streams: [{ name: 'COMPAT', subjects: ['compat.>'] }] })], providers: [PingHandler] })],
  AppModule,
);

async function main() {
  const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
  const ack = await app.get(JetStreamPublisher).publish('compat.ping', { id: 'p-1' });
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('no delivery within 10 s')), 10_000));
  const seen = await Promise.race([handled, timeout]);
  await app.close();
  const version = require('@nestjs/core/package.json').version;
  if (!seen.isPing || seen.id !== 'p-1' || seen.subject !== 'compat.ping' || !seen.ctxOk) {
    throw new Error(`unexpected delivery: ${JSON.stringify(seen)}`);
  }
  console.log(`nest ${version} (CommonJS): published seq ${ack.seq}, handled ${JSON.stringify(seen)}`);
  console.log(`nest ${version} (CommonJS): ${await require('./transport.js')()}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
