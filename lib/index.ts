export { JetStreamModule } from './module/jetstream.module.js';
export { JETSTREAM_MODULE_OPTIONS } from './module/jetstream-module-definition.js';
export { DEFAULT_CONNECTION, JETSTREAM_RESOLVED_OPTIONS } from './options/jetstream.tokens.js';
export {
  getConnectionToken,
  getConsumerControlToken,
  getSchedulesToken,
  getDeadLetterServiceToken,
  getLifecycleToken,
  getOptionsToken,
  getPublisherToken,
  InjectDeadLetters,
  InjectJetStreamConnection,
  InjectPublisher,
} from './module/connection-tokens.js';
export { JetStreamLifecycle } from './module/jetstream-lifecycle.js';
export { ConsumerControl } from './module/consumer-control.js';
export type { ConsumerRef } from './module/consumer-control.js';
export type { ConsumerPauseState } from './provisioning/consumer-pause.js';
export { JetStreamSchedules } from './scheduling/jetstream-schedules.js';
export type { ScheduleInfo } from './scheduling/schedule-store.js';
export type { ScheduleDefinition, ScheduleTiming } from './options/schedule-definition.js';
export { ScheduleHeaders } from './producer/message-schedule.js';
export type { ScheduleOptions, ScheduleResult } from './producer/message-schedule.js';
export { ScheduleRejectedError } from './errors/schedule-errors.js';
export type { HandledEvent } from './delivery/dispatcher.js';
export type { DeadLetterReason } from './dead-letters/dead-letter-target.js';
export type { RunningHandlerInfo } from './consumer/consumer-engine.js';
export type { JetStreamFeatureOptions } from './module/jetstream-feature.js';
export type {
  JetStreamModuleOptions,
  NatsConnectionOptions,
  ResolvedModuleOptions,
  StreamDefinition,
} from './options/jetstream-module-options.js';

export { OnEvent, OnJetStreamEvent } from './decorators/on-event.decorator.js';
export { OnKvChange, type OnKvChangeOptions } from './decorators/on-kv-change.decorator.js';
export { EventCtx, EventPayload, InboxTransaction } from './decorators/event-params.decorator.js';
export type {
  BatchHandlerOptions,
  CircuitBreakerOptions,
  DeadLetterOption,
  DeliverPolicyOption,
  DeliveryMode,
  OnEventOptions,
  OrderKey,
  PartitionOptions,
  RetryOptions,
  SchemaVersionOptions,
  Upcaster,
} from './decorators/on-event-options.js';
export { TerminalError, RetryableError } from './errors/handler-errors.js';
export { JetStreamRetryInterceptor } from './delivery/interceptors/retry.interceptor.js';
export { JetStreamDeadLetterInterceptor } from './delivery/interceptors/dead-letter.interceptor.js';
export { DeadLetterService } from './dead-letters/dead-letter.service.js';
export type { DeadLetter, DeadLetterFilter } from './dead-letters/dead-letter.service.js';
export { DeadLetterHeaders, IDEMPOTENCY_KEY_HEADER } from './dead-letters/dead-letter-headers.js';

export { EventContext } from './context/event-context.js';
export { kvChangeOf, type KvChange, type KvOperation } from './context/kv-change.js';
export { BatchContext } from './context/batch-context.js';
export type { BatchMessage } from './context/batch-context.js';
export { JETSTREAM_CONTEXT_TYPE, isJetStreamContext } from './delivery/jetstream-context-type.js';

export { JetStreamPayloadPipe } from './serialization/payload-validation.pipe.js';
export { jsonCodec } from './serialization/codec.js';
export { msgpackCodec } from './serialization/msgpack-codec.js';
export { CONTENT_TYPE_HEADER, type Codec } from './wire/codec.js';
export { SCHEMA_NAME_HEADER, SCHEMA_VERSION_HEADER } from './wire/schema-headers.js';
export { JetStreamPublisher } from './producer/jetstream-publisher.js';
export type {
  BatchItem,
  BatchItemResult,
  BatchOptions,
  PublishExpectations,
  PublishOptions,
  PublishResult,
} from './producer/jetstream-publisher.js';

export { SERVER_FEATURES, serverHasFeature } from './options/server-features.js';
export type { ServerFeature, ServerVersionSource } from './options/server-features.js';
export { AtomicBatchRejectedError, ServerFeatureUnavailableError, StreamFeatureDisabledError } from './errors/server-feature-errors.js';
export { defineEvents, EventContracts, typedOnEvent } from './contracts/event-contracts.js';
export type {
  EventDefinition,
  EventInput,
  EventInputs,
  EventMapDefinition,
  EventOutput,
  KnownPattern,
  PayloadClass,
  PayloadSpec,
  TypedHandlerDecorator,
} from './contracts/event-contracts.js';
export { TypedPublisher, typedPublisher } from './contracts/typed-publisher.js';
export type { MatchingSubjects } from './contracts/subject-match.js';

export { JetStreamConnection } from './connection/jetstream-connection.js';
export type { ConnectionState } from './connection/jetstream-connection.js';

export type { MetricsOptions, TracingOptions } from './options/observability-options.js';
export type { MetricsRegistry } from './options/observability-options.js';
export type { ConsumeStatus } from './observability/instrumentation.js';

export { createAsyncApiDocument } from './asyncapi/create-asyncapi-document.js';
export type { AsyncApiOptions } from './asyncapi/create-asyncapi-document.js';
export type {
  AsyncApiChannel,
  AsyncApiDocument,
  AsyncApiInfo,
  AsyncApiMessage,
  AsyncApiOperation,
  AsyncApiOperationReply,
  AsyncApiServer,
} from './asyncapi/asyncapi-document.js';
export type { AsyncApiTransportOptions } from './asyncapi/handler-inventory.js';
export type { JsonSchema } from './asyncapi/json-schema.js';

export {
  ConnectionClosedError,
  ConnectionFailedError,
  ConsumerConfigDriftError,
  HandlerConfigurationError,
  HandlerTimeoutError,
  InvalidOptionsError,
  InvalidSubjectError,
  JetStreamModuleError,
  NoStreamForHandlerError,
  NoStreamForSubjectError,
  PayloadEncodingError,
  PayloadTooLargeError,
  PayloadValidationError,
  PublishRejectedError,
  PublishTimeoutError,
  StreamConfigDriftError,
  StreamUnavailableError,
  StreamProvisioningError,
  UnsupportedSchemaError,
} from './errors/jetstream-errors.js';

export type { DatabaseAdapter, Listening, OwnedDatabase, SqlRunner, Statement } from './database/database-adapter.js';
export { TransactionRolledBackError } from './database/database-errors.js';
export { pgAdapter, type PgClientLike, type PgPoolClientLike, type PgPoolLike } from './database/pg-adapter.js';
export { pgliteAdapter, type PgliteLike, type PgliteTransactionLike } from './database/pglite-adapter.js';
export { typeormAdapter, type TypeormDataSourceLike, type TypeormManagerLike } from './database/typeorm-adapter.js';
export { drizzleAdapter, type DrizzleDatabaseLike, type DrizzleExecutorLike } from './database/drizzle-adapter.js';
export { openDatabase, type OpenDatabaseOptions, type OpenedDatabase } from './database/open-database.js';
export { ensureSchema, inboxDdl, outboxDdl } from './database/schema.js';
export { tableName, type TableName } from './database/table-names.js';

export { JetStreamOutbox, type OutboxPublishOptions, type OutboxPublishResult } from './outbox/jetstream-outbox.js';
export type { OutboxOptions, OutboxRelayOptions } from './outbox/outbox-options.js';
export type { RelayStats } from './outbox/outbox-relay.js';
export type { ParkReason } from './outbox/unpublishable.js';
export {
  JETSTREAM_OUTBOX_OPTIONS,
  JetStreamOutboxModule,
  OutboxRelayHost,
  type JetStreamOutboxAsyncOptions,
} from './module/jetstream-outbox.module.js';

export { JetStreamInboxModule } from './module/jetstream-inbox.module.js';
export { JetStreamInbox } from './inbox/jetstream-inbox.js';
export { DEFAULT_INBOX_TABLE, type JetStreamInboxOptions, type InboxGroupCommitOptions } from './inbox/inbox-options.js';
export { InboxHandlerAbortedError, InboxUnavailableError } from './inbox/inbox-errors.js';
export { OutboxUnavailableError } from './outbox/outbox-errors.js';
