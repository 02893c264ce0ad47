import { Module, type DynamicModule } from '@nestjs/common';
import { buildFeatureModule, type JetStreamFeatureOptions } from './jetstream-feature.js';
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
export class JetStreamModule extends JetStreamConfigurableModule {
  /**
   * Declares the streams a feature module owns, beside its handlers. They are ensured with the
   * root's, before any handler starts; the same stream declared differently in two modules, or
   * two modules' streams capturing the same subject, fail startup naming both modules.
   */
  static forFeature(options: JetStreamFeatureOptions): DynamicModule {
    return buildFeatureModule(options);
  }
}
