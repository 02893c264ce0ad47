import { ConfigurableModuleBuilder, Module } from '@nestjs/common';
import { JetStreamInbox } from '../inbox/jetstream-inbox.js';
import type { JetStreamInboxOptions } from '../inbox/inbox-options.js';

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
export class JetStreamInboxModule extends ConfigurableModuleClass {}
