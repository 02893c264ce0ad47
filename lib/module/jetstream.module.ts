import { Module, type Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { JetStreamConnection } from '../connection/jetstream-connection.js';
import { DeadLetterService } from '../dead-letters/dead-letter.service.js';
import { HandlerExplorer } from '../discovery/handler-explorer.js';
import { JetStreamPublisher } from '../producer/jetstream-publisher.js';
import { StreamProvisioner } from '../provisioning/stream-provisioner.js';
import { JetStreamLifecycle } from './jetstream-lifecycle.js';
import { JETSTREAM_MODULE_OPTIONS, JetStreamConfigurableModule } from './jetstream-module-definition.js';
import type { JetStreamModuleOptions, ResolvedModuleOptions } from './jetstream-module-options.js';
import { JETSTREAM_RESOLVED_OPTIONS } from './jetstream.tokens.js';
import { resolveModuleOptions } from './resolve-module-options.js';

const providers: Provider[] = [
  {
    provide: JETSTREAM_RESOLVED_OPTIONS,
    useFactory: (options: JetStreamModuleOptions) => resolveModuleOptions(options),
    inject: [JETSTREAM_MODULE_OPTIONS],
  },
  {
    // Streams are ensured before anything can inject the connection or the publisher, so a
    // publish from another provider's onModuleInit already finds its stream.
    provide: JetStreamConnection,
    useFactory: async (options: ResolvedModuleOptions) => {
      const connection = await JetStreamConnection.open(options);
      try {
        await new StreamProvisioner(connection).ensureAll(options.streams);
      } catch (err) {
        await connection.close();
        throw err;
      }
      return connection;
    },
    inject: [JETSTREAM_RESOLVED_OPTIONS],
  },
  JetStreamPublisher,
  DeadLetterService,
  HandlerExplorer,
  JetStreamLifecycle,
];

/**
 * `JetStreamModule.forRoot({...})` or `.forRootAsync({ useFactory, inject })`: one NATS
 * connection, the streams in the options, a consumer per `@OnEvent` handler, and an injectable
 * `JetStreamPublisher`. Global, so import it once in the root module.
 */
@Module({
  imports: [DiscoveryModule],
  providers,
  exports: [JetStreamPublisher, DeadLetterService, JetStreamConnection, JetStreamLifecycle, JETSTREAM_RESOLVED_OPTIONS],
})
export class JetStreamModule extends JetStreamConfigurableModule {}
