import { ConfigurableModuleBuilder } from '@nestjs/common';
import { buildConnectionModule } from './connection-module.js';
import type { JetStreamModuleOptions } from './jetstream-module-options.js';

export const {
  ConfigurableModuleClass: JetStreamConfigurableModule,
  MODULE_OPTIONS_TOKEN: JETSTREAM_MODULE_OPTIONS,
  OPTIONS_TYPE: JETSTREAM_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: JETSTREAM_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<JetStreamModuleOptions>({ moduleName: 'JetStream' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createJetStreamOptions')
  // `name` is an extra, not an option: providers and tokens depend on it, so it must be known
  // when forRootAsync is called, before its factory runs.
  .setExtras<{ isGlobal?: boolean; name?: string }>({ isGlobal: true, name: undefined }, (definition, extras) =>
    buildConnectionModule(definition, extras.name, extras.isGlobal ?? true),
  )
  .build();
