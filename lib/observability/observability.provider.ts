import type { Provider } from '@nestjs/common';
import type { ResolvedModuleOptions } from '../options/jetstream-module-options.js';
import { JETSTREAM_RESOLVED_OPTIONS } from '../options/jetstream.tokens.js';
import { JetStreamObservability } from './jetstream-observability.js';

/** One per connection module: loads the optional peers the options switch on. */
export const observabilityProvider: Provider = {
  provide: JetStreamObservability,
  useFactory: (options: ResolvedModuleOptions) => JetStreamObservability.create(options),
  inject: [JETSTREAM_RESOLVED_OPTIONS],
};
