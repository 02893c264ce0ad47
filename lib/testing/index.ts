// Entry point `nestjs-jetstream/testing`: helpers for testing your own handlers against a real
// nats-server. Not loaded by the root entry.
export { startNatsTestServer } from './nats-test-server.js';
export type { NatsTestServer, TestServerOptions } from './nats-test-server.js';
export { isSupportedVersion, parseNatsServerVersion, resolveNatsServer } from './nats-server-binary.js';
export type { ServerResolution, ServerVersion } from './nats-server-binary.js';
export { NatsServerProcess } from './nats-server-process.js';
export type { StartOptions } from './nats-server-process.js';
export { startCluster } from './nats-cluster.js';
export { recordHandled } from './handled-recorder.js';
export { WAIT_TIMEOUT_MS } from './wait-for-matches.js';
export type { HandledQuery, HandledRecorder, WaitOptions } from './handled-recorder.js';
export { capturePublished } from './publish-capture.js';
export { publishDuplicate } from './publish-duplicate.js';
export type { DuplicateOptions } from './publish-duplicate.js';
export type { CapturedPublish, PublishCapture } from './publish-capture.js';
