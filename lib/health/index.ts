// `nestjs-jetstream/health`: a subpath so that `@nestjs/terminus` stays an optional peer.
export { JetStreamHealthIndicator } from './jetstream-health-indicator.js';
export type { ConsumerLagDetails, JetStreamHealthOptions } from './jetstream-health-indicator.js';
