import type { DynamicModule, Provider } from '@nestjs/common';
import { DiscoveryModule, ModulesContainer } from '@nestjs/core';
import { JetStreamConnection } from '../connection/jetstream-connection.js';
import { DeadLetterService } from '../dead-letters/dead-letter.service.js';
import { HandlerExplorer } from '../discovery/handler-explorer.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { JetStreamPublisher } from '../producer/jetstream-publisher.js';
import { StreamProvisioner } from '../provisioning/stream-provisioner.js';
import { JetStreamObservability } from '../observability/jetstream-observability.js';
import { observabilityProvider } from '../observability/observability.provider.js';
import { scopedToken } from './connection-tokens.js';
import { withFeatureStreams } from './jetstream-feature.js';
import { JetStreamLifecycle } from './jetstream-lifecycle.js';
import type { JetStreamModuleOptions, ResolvedModuleOptions } from '../options/jetstream-module-options.js';
import {
  assertConnectionName,
  DEFAULT_CONNECTION,
  isDefaultConnection,
  JETSTREAM_CONNECTION_NAME,
  JETSTREAM_RESOLVED_OPTIONS,
} from '../options/jetstream.tokens.js';
import { resolveModuleOptions } from '../options/resolve-module-options.js';

/**
 * Completes the dynamic module ConfigurableModuleBuilder made (which only provides the raw
 * options) with one connection's providers. Every instance keeps the class tokens internally,
 * so its own lifecycle, publisher and dead-letter service inject each other unchanged; only the
 * exports differ: the default connection exports the classes, a named one string tokens.
 */
export function buildConnectionModule(
  definition: DynamicModule,
  optionsToken: string | symbol,
  name: string | undefined,
  isGlobal: boolean,
): DynamicModule {
  try {
    assertConnectionName(name, 'JetStreamModule.forRoot');
  } catch (err) {
    throw new InvalidOptionsError((err as Error).message);
  }
  const connectionName = name ?? DEFAULT_CONNECTION;
  const providers: Provider[] = [
    { provide: JETSTREAM_CONNECTION_NAME, useValue: connectionName },
    {
      provide: JETSTREAM_RESOLVED_OPTIONS,
      useFactory: (options: JetStreamModuleOptions, modules: ModulesContainer) =>
        withFeatureStreams(resolveModuleOptions(options), connectionName, modules),
      inject: [optionsToken, ModulesContainer],
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
      // Observability first: a missing optional peer fails startup before a connection is open.
      inject: [JETSTREAM_RESOLVED_OPTIONS, JetStreamObservability],
    },
    observabilityProvider,
    JetStreamPublisher,
    DeadLetterService,
    HandlerExplorer,
    JetStreamLifecycle,
  ];
  const aliases: Provider[] = [
    { provide: scopedToken('publisher', connectionName), useExisting: JetStreamPublisher },
    { provide: scopedToken('dead-letters', connectionName), useExisting: DeadLetterService },
    { provide: scopedToken('connection', connectionName), useExisting: JetStreamConnection },
    { provide: scopedToken('lifecycle', connectionName), useExisting: JetStreamLifecycle },
    { provide: scopedToken('options', connectionName), useExisting: JETSTREAM_RESOLVED_OPTIONS },
  ];
  providers.push(...aliases);
  const exported: NonNullable<DynamicModule['exports']> = aliases.map((p) => (p as { provide: string }).provide);
  if (isDefaultConnection(name)) {
    exported.push(JetStreamPublisher, DeadLetterService, JetStreamConnection, JetStreamLifecycle, JETSTREAM_RESOLVED_OPTIONS, JetStreamObservability);
  }
  return {
    ...definition,
    global: isGlobal,
    imports: [...(definition.imports ?? []), DiscoveryModule],
    providers: [...(definition.providers ?? []), ...providers],
    exports: [...(definition.exports ?? []), ...exported],
  };
}
