export { JetStreamModule } from './module/jetstream.module.js';
export { JETSTREAM_MODULE_OPTIONS } from './module/jetstream-module-definition.js';
export { JETSTREAM_RESOLVED_OPTIONS } from './module/jetstream.tokens.js';
export { JetStreamLifecycle } from './module/jetstream-lifecycle.js';
export type { HandledEvent } from './delivery/dispatcher.js';
export type { RunningHandlerInfo } from './consumer/consumer-engine.js';
export type {
  JetStreamModuleOptions,
  NatsConnectionOptions,
  ResolvedModuleOptions,
  StreamDefinition,
} from './module/jetstream-module-options.js';

export { OnEvent } from './decorators/on-event.decorator.js';
export type {
  DeadLetterOption,
  DeliverPolicyOption,
  DeliveryMode,
  OnEventOptions,
  OrderKey,
  RetryOptions,
} from './decorators/on-event-options.js';
export { TerminalError, RetryableError } from './errors/handler-errors.js';
export { JetStreamRetryInterceptor } from './delivery/interceptors/retry.interceptor.js';
export { JetStreamDeadLetterInterceptor } from './delivery/interceptors/dead-letter.interceptor.js';
export { DeadLetterService } from './dead-letters/dead-letter.service.js';
export type { DeadLetter, DeadLetterFilter } from './dead-letters/dead-letter.service.js';
export { DeadLetterHeaders, IDEMPOTENCY_KEY_HEADER } from './dead-letters/dead-letter-headers.js';

export { EventContext } from './consumer/event-context.js';
export { JETSTREAM_CONTEXT_TYPE, isJetStreamContext } from './delivery/jetstream-context-type.js';

export { JetStreamPayloadPipe } from './serialization/payload-validation.pipe.js';
export { JetStreamPublisher } from './producer/jetstream-publisher.js';
export type {
  BatchItem,
  BatchItemResult,
  BatchOptions,
  PublishExpectations,
  PublishOptions,
  PublishResult,
} from './producer/jetstream-publisher.js';

export { JetStreamConnection } from './connection/jetstream-connection.js';

export {
  ConnectionClosedError,
  ConnectionFailedError,
  ConsumerConfigDriftError,
  HandlerConfigurationError,
  InvalidOptionsError,
  InvalidSubjectError,
  JetStreamModuleError,
  NoStreamForSubjectError,
  PayloadEncodingError,
  PayloadValidationError,
  PublishRejectedError,
  PublishTimeoutError,
  StreamConfigDriftError,
  StreamProvisioningError,
} from './errors/jetstream-errors.js';
