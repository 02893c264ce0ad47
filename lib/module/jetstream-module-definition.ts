import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { JetStreamModuleOptions } from './jetstream-module-options.js';

export const {
  ConfigurableModuleClass: JetStreamConfigurableModule,
  MODULE_OPTIONS_TOKEN: JETSTREAM_MODULE_OPTIONS,
  OPTIONS_TYPE: JETSTREAM_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: JETSTREAM_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<JetStreamModuleOptions>({ moduleName: 'JetStream' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createJetStreamOptions')
  // One connection and one set of consumers per application: the module is global.
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
