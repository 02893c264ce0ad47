import { ConfigurableModuleBuilder } from '@nestjs/common';
import { buildConnectionModule } from './connection-module.js';
import type { JetStreamModuleOptions } from '../options/jetstream-module-options.js';

// Named here (the value Nest derives from moduleName) so the extras callback below can hand it
// to buildConnectionModule, and connection-module.ts need not import this file back.
const OPTIONS_TOKEN = 'JET_STREAM_MODULE_OPTIONS';

export const {
  ConfigurableModuleClass: JetStreamConfigurableModule,
  MODULE_OPTIONS_TOKEN: JETSTREAM_MODULE_OPTIONS,
  OPTIONS_TYPE: JETSTREAM_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: JETSTREAM_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<JetStreamModuleOptions>({ moduleName: 'JetStream', optionsInjectionToken: OPTIONS_TOKEN })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createJetStreamOptions')
  // `name` is an extra, not an option: providers and tokens depend on it, so it must be known
  // when forRootAsync is called, before its factory runs.
  .setExtras<{ isGlobal?: boolean; name?: string }>({ isGlobal: true, name: undefined }, (definition, extras) =>
    buildConnectionModule(definition, OPTIONS_TOKEN, extras.name, extras.isGlobal ?? true),
  )
  .build();
