import { ConfigurableModuleBuilder, Module, type DynamicModule } from '@nestjs/common';
import { JetStreamInbox } from '../inbox/jetstream-inbox.js';
import { resolveInboxOptions, type JetStreamInboxOptions } from '../inbox/inbox-options.js';

const OPTIONS_TOKEN = 'JET_STREAM_INBOX_MODULE_OPTIONS';

const { ConfigurableModuleClass } = new ConfigurableModuleBuilder<JetStreamInboxOptions>({ moduleName: 'JetStreamInbox', optionsInjectionToken: OPTIONS_TOKEN })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createJetStreamInboxOptions')
  .setExtras<{ isGlobal?: boolean }>({ isGlobal: true }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal ?? true,
    providers: [...(definition.providers ?? []), { provide: JetStreamInbox, useFactory: (options: JetStreamInboxOptions) => new JetStreamInbox(options), inject: [OPTIONS_TOKEN] }],
    exports: [JetStreamInbox],
  }))
  .build();

/**
 * The database of `@OnEvent(…, { inbox: true })` handlers, once per application:
 * `JetStreamInboxModule.forRoot({ database: pgAdapter(pool) })`, or `.forRootAsync({ inject:
 * [DataSource], useFactory: (ds) => ({ database: typeormAdapter(ds) }) })`. Global; every
 * connection's inbox handlers share it.
 */
@Module({})
export class JetStreamInboxModule extends ConfigurableModuleClass {
  static override forRoot(options: JetStreamInboxOptions & { isGlobal?: boolean }): DynamicModule {
    // Bad options fail here, before Nest builds any provider. Failing in the provider's factory
    // left the NATS connection another provider had already opened with nobody to close it (a
    // failed build runs no shutdown hook): its timers kept jest from exiting after inbox.spec.ts.
    resolveInboxOptions(options);
    return super.forRoot(options);
  }
}
