// Entry point `nestjs-jetstream/transport`: kept apart from the root entry so that apps without
// @nestjs/microservices (an optional peer) never load it.
export { JetStreamServer, JETSTREAM_TRANSPORT } from './jetstream-server.js';
export type { JetStreamServerOptions } from './jetstream-server.js';
export { JetStreamClient, RequestTimeoutError } from './jetstream-client.js';
export type { JetStreamClientOptions } from './jetstream-client.js';
export { JetStreamContext, JetStreamRequestContext } from './jetstream-context.js';
export { JetStreamRecord, JetStreamRecordBuilder } from './jetstream-record.js';
export { RequestPatternCapturedError, RequestStoredByStreamError } from '../errors/jetstream-errors.js';
