// Entry point `nestjs-jetstream/testing`: helpers for testing your own handlers against a real
// nats-server. Not loaded by the root entry.
export {
  NatsServerProcess,
  isSupportedVersion,
  parseNatsServerVersion,
  resolveNatsServer,
  startCluster,
  startNatsTestServer,
} from './nats-test-server.js';
export type { NatsTestServer, ServerResolution, ServerVersion, StartOptions, TestServerOptions } from './nats-test-server.js';
export { recordHandled } from './handled-recorder.js';
export { WAIT_TIMEOUT_MS } from './wait-for-matches.js';
export type { HandledQuery, HandledRecorder, WaitOptions } from './handled-recorder.js';
export { capturePublished } from './publish-capture.js';
export { publishDuplicate } from './publish-duplicate.js';
export type { DuplicateOptions } from './publish-duplicate.js';
export type { CapturedPublish, PublishCapture } from './publish-capture.js';
