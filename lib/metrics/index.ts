// `nestjs-jetstream/metrics`: a subpath so an app without an HTTP endpoint never loads it.
export { JetStreamMetricsModule } from './jetstream-metrics.module.js';
export type { JetStreamMetricsModuleOptions } from './jetstream-metrics.module.js';
