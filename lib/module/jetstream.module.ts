import { Module } from '@nestjs/common';
import { JetStreamConfigurableModule } from './jetstream-module-definition.js';

/**
 * `JetStreamModule.forRoot({...})` or `.forRootAsync({ useFactory, inject })`: one NATS
 * connection, the streams in the options, a consumer per `@OnEvent` handler, and an injectable
 * `JetStreamPublisher`. Global, so import it once in the root module.
 *
 * More connections: `forRoot({ name: 'analytics', ... })` once per extra connection;
 * `@OnEvent(subject, { connection: 'analytics' })` binds a handler to it and
 * `@InjectPublisher('analytics')` injects its publisher. Providers are added per connection by
 * `buildConnectionModule`.
 */
@Module({})
export class JetStreamModule extends JetStreamConfigurableModule {}
