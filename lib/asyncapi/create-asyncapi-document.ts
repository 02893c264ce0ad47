import type { DynamicModule, INestApplicationContext, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { resolveDeadLetterTarget } from '../dead-letters/dead-letter-target.js';
import { DEFAULT_DEAD_LETTER_STREAM } from '../dead-letters/dead-letter-target.js';
import type {
  AsyncApiChannel,
  AsyncApiDocument,
  AsyncApiInfo,
  AsyncApiMessage,
  AsyncApiOperation,
  AsyncApiParameter,
  AsyncApiSchedule,
  AsyncApiServer,
  AsyncApiStream,
} from './asyncapi-document.js';
import { ClassSchemaRegistry } from './class-schema.js';
import { standardSchemaMessage } from './standard-schema-message.js';
import type { JsonSchema } from './json-schema.js';
import type { ScheduleDefinition } from '../options/schedule-definition.js';
import type { StreamDefinition } from '../options/jetstream-module-options.js';
import {
  inventoryHandlers,
  streamFor,
  type DeclaredHandler,
  type DeclaredRequestHandler,
  type HandlerInventory,
  type AsyncApiTransportOptions,
} from './handler-inventory.js';

export interface AsyncApiOptions extends AsyncApiInfo {
  /** Servers to list, e.g. `{ production: { host: 'nats.example.com:4222', protocol: 'nats' } }`. */
  servers?: Record<string, AsyncApiServer>;
  /**
   * The `streams` and `defaults` the application gives `JetStreamServer`, so that its
   * `@EventPattern` handlers get their stream and options as the server resolves them. The
   * server's options are not part of the module tree, so the document cannot find them itself.
   */
  transport?: AsyncApiTransportOptions;
}

/**
 * An AsyncAPI 3.0 document of the application's `@OnEvent` handlers, and of the
 * `@EventPattern`/`@MessagePattern` handlers JetStreamServer would serve: a channel per subject,
 * a `receive` operation per handler (durable, delivery mode, retry and dead letters as
 * `x-jetstream-*` fields; a `reply` for request handlers), and message payload schemas built from
 * the payload classes' class-validator decorators.
 *
 * Pass a running application (`app`), or the root module: it is then scanned in Nest's preview
 * mode, which instantiates no provider and opens no connection.
 */
export async function createAsyncApiDocument(
  source: INestApplicationContext | Type<unknown> | DynamicModule,
  options: AsyncApiOptions,
): Promise<AsyncApiDocument> {
  checkInfo(options);
  if (isApplicationContext(source)) return buildDocument(inventoryHandlers(source, options.transport), options);
  const app = await NestFactory.createApplicationContext(source, { preview: true, logger: false, abortOnError: false });
  try {
    return buildDocument(inventoryHandlers(app, options.transport), options);
  } finally {
    await app.close();
  }
}

function isApplicationContext(source: unknown): source is INestApplicationContext {
  return typeof source === 'object' && source !== null && typeof (source as INestApplicationContext).get === 'function' && 'close' in source;
}

function checkInfo(options: AsyncApiOptions): void {
  if (!options || typeof options.title !== 'string' || options.title.length === 0) {
    throw new TypeError('createAsyncApiDocument: options.title must be a non-empty string');
  }
  if (typeof options.version !== 'string' || options.version.length === 0) {
    throw new TypeError('createAsyncApiDocument: options.version must be a non-empty string (the version of your API)');
  }
}

/** The document for an inventory; pure, so it can be tested without Nest. */
export function buildDocument(inventory: HandlerInventory, options: AsyncApiOptions): AsyncApiDocument {
  const registry = new ClassSchemaRegistry();
  const channels: Record<string, AsyncApiChannel> = {};
  const channelIds = new Map<string, string>();
  const operations: Record<string, AsyncApiOperation> = {};
  const messages: Record<string, AsyncApiMessage> = {};

  const channelOf = (subject: string): string => {
    let channelId = channelIds.get(subject);
    if (!channelId) {
      channelId = uniqueKey(channels, keyOf(subject));
      channelIds.set(subject, channelId);
      channels[channelId] = channelFor(subject);
    }
    return channelId;
  };
  const addMessage = (channelId: string, messageId: string): void => {
    channels[channelId].messages[messageId] ??= { $ref: `#/components/messages/${messageId}` };
  };

  for (const handler of inventory.handlers) {
    const channelId = channelOf(handler.subject);
    const channel = channels[channelId];
    if (handler.stream && !channel['x-jetstream-stream']) channel['x-jetstream-stream'] = handler.stream;

    // A batch handler's parameter is an array; each message carries one item of it.
    const messageType = handler.options.batch ? handler.options.batch.payloadType : handler.payloadType;
    const messageId = handler.options.schema || handler.options.schemaVersion
      ? schemaMessageFor(handler, channelId, messages)
      : messageFor(messageType, channelId, registry, messages);
    addMessage(channelId, messageId);

    const operationId = uniqueKey(operations, keyOf(handler.handlerId));
    operations[operationId] = operationFor(handler, channelId, messageId);
  }

  for (const handler of inventory.requestHandlers) {
    const channelId = channelOf(handler.subject);
    const messageId = messageFor(handler.payloadType, channelId, registry, messages);
    addMessage(channelId, messageId);

    const operationId = uniqueKey(operations, keyOf(handler.handlerId));
    // Each request handler answers in its own reply message, on the requester's inbox.
    const replyId = uniqueKey(channels, `${operationId}_reply`);
    channels[replyId] = {
      address: null,
      description: `The requester's inbox: the reply subject of a NATS request to ${handler.subject}`,
      messages: {},
    };
    const replyMessageId = uniqueKey(messages, replyId);
    messages[replyMessageId] = {
      name: replyMessageId,
      title: `Reply of ${handler.handlerId}`,
      contentType: 'application/json',
      payload: replyEnvelope(handler, registry),
    };
    addMessage(replyId, replyMessageId);
    operations[operationId] = {
      action: 'receive',
      channel: { $ref: `#/channels/${channelId}` },
      messages: [{ $ref: `#/channels/${channelId}/messages/${messageId}` }],
      summary: `${handler.handlerId} answers requests on ${handler.subject}`,
      reply: {
        channel: { $ref: `#/channels/${replyId}` },
        messages: [{ $ref: `#/channels/${replyId}/messages/${replyMessageId}` }],
      },
      'x-jetstream-source': '@MessagePattern',
      'x-jetstream-handler': handler.handlerId,
    };
  }

  // After the handlers: a schedule firing onto a handled subject sends the handlers' message.
  for (const { connection, schedule, streams } of declaredSchedules(inventory)) {
    const channelId = channelOf(schedule.subject);
    let messageIds = Object.keys(channels[channelId].messages);
    if (messageIds.length === 0) {
      const id = uniqueKey(messages, `${keyOf(schedule.name)}_fire`);
      messages[id] = {
        name: id,
        title: `What schedule ${schedule.name} publishes`,
        contentType: 'application/json',
        payload: schedule.payload === undefined ? { description: 'An empty body' } : { const: schedule.payload },
      };
      addMessage(channelId, id);
      messageIds = [id];
    }
    const stream = streamFor(schedule.subject, streams);
    const timing = scheduleTiming(schedule);
    operations[uniqueKey(operations, `schedule_${keyOf(schedule.name)}`)] = {
      action: 'send',
      channel: { $ref: `#/channels/${channelId}` },
      messages: messageIds.map((id) => ({ $ref: `#/channels/${channelId}/messages/${id}` })),
      summary: `nats-server fires schedule "${schedule.name}" onto ${schedule.subject}: ${timing.cron ? `cron ${timing.cron}${timing.timeZone ? ` (${timing.timeZone})` : ''}` : timing.every !== undefined ? `every ${timing.every}` : `once at ${timing.at}`}`,
      'x-jetstream-source': 'forRoot({ schedules })',
      'x-jetstream-connection': connection,
      ...(stream ? { 'x-jetstream-stream': stream } : {}),
      'x-jetstream-schedule': timing,
    };
  }

  const info: AsyncApiInfo = { title: options.title, version: options.version };
  if (options.description) info.description = options.description;
  const document: AsyncApiDocument = {
    asyncapi: '3.0.0',
    info,
    defaultContentType: 'application/json',
    channels,
    operations,
    components: { messages, schemas: registry.schemas },
  };
  if (options.servers && Object.keys(options.servers).length > 0) document.servers = options.servers;
  const streams = declaredStreams(inventory);
  if (streams.length > 0) document['x-jetstream-streams'] = streams;
  return document;
}

function channelFor(subject: string): AsyncApiChannel {
  // An object pattern's route is JSON: its braces would read as address parameters.
  if (/[{}]/.test(subject)) {
    return { address: null, description: `Nest object pattern, subscribed to as the subject ${subject}`, messages: {}, 'x-jetstream-subject': subject };
  }
  const parameters: Record<string, AsyncApiParameter> = {};
  const tokens = subject.split('.').map((token, i) => {
    if (token === '*') {
      parameters[`token${i + 1}`] = { description: `Any single subject token (NATS "*" at position ${i + 1})` };
      return `{token${i + 1}}`;
    }
    if (token === '>') {
      parameters.rest = { description: 'One or more subject tokens (NATS ">")' };
      return '{rest}';
    }
    return token;
  });
  return {
    address: tokens.join('.'),
    messages: {},
    ...(Object.keys(parameters).length > 0 ? { parameters } : {}),
    'x-jetstream-subject': subject,
  };
}

/** One message per schema name and version (or per channel when unnamed), shared by its handlers. */
function schemaMessageFor(handler: DeclaredHandler, channelId: string, messages: Record<string, AsyncApiMessage>): string {
  const version = handler.options.schemaVersion;
  const id = version?.name ? `${keyOf(version.name)}_v${version.version}` : `${channelId}_payload`;
  messages[id] ??= standardSchemaMessage(id, handler.options, undefined);
  return id;
}

function messageFor(
  type: unknown,
  channelId: string,
  registry: ClassSchemaRegistry,
  messages: Record<string, AsyncApiMessage>,
): string {
  if (ClassSchemaRegistry.isPayloadClass(type)) {
    const name = registry.register(type);
    messages[name] ??= { name, title: type.name, contentType: 'application/json', payload: registry.schemaFor(type) };
    return name;
  }
  // No class to name the message after: one message per channel, with whatever the type says.
  const id = `${channelId}_payload`;
  messages[id] ??= { name: id, contentType: 'application/json', payload: registry.schemaFor(type) };
  return id;
}

/** JetStreamServer's reply body (`ReplyEnvelope`): the handler's result, or what it threw. */
function replyEnvelope(handler: DeclaredRequestHandler, registry: ClassSchemaRegistry): JsonSchema {
  return {
    oneOf: [
      {
        type: 'object',
        description: 'The handler returned: its result (absent when it returned nothing)',
        properties: { response: isDeferred(handler.returnType) ? {} : registry.schemaFor(handler.returnType) },
        additionalProperties: false,
      },
      {
        type: 'object',
        description: "The handler threw: { name, message } of an Error, or an RpcException's payload",
        properties: { err: {} },
        required: ['err'],
        additionalProperties: false,
      },
    ],
  };
}

/** A Promise or Observable return type erases what it resolves to. */
function isDeferred(type: unknown): boolean {
  if (typeof type !== 'function') return false;
  const prototype = (type as { prototype?: Record<string, unknown> }).prototype;
  return typeof prototype?.then === 'function' || typeof prototype?.subscribe === 'function';
}

function operationFor(handler: DeclaredHandler, channelId: string, messageId: string): AsyncApiOperation {
  const { options } = handler;
  const operation: AsyncApiOperation = {
    action: 'receive',
    channel: { $ref: `#/channels/${channelId}` },
    messages: [{ $ref: `#/channels/${channelId}/messages/${messageId}` }],
    summary: `${handler.handlerId} handles ${handler.subject}`,
    'x-jetstream-source': handler.source,
    'x-jetstream-handler': handler.handlerId,
    ...(handler.connection ? { 'x-jetstream-connection': handler.connection } : {}),
    'x-jetstream-delivery': options.delivery,
    'x-jetstream-concurrency': options.concurrency,
    'x-jetstream-retry': options.retry.enabled ? { maxAttempts: options.retry.maxAttempts, backoff: options.retry.backoff } : false,
  };
  if (handler.stream) operation['x-jetstream-stream'] = handler.stream;
  if (options.durable) operation['x-jetstream-durable'] = options.durable;
  if (options.batch) operation['x-jetstream-batch'] = { maxMessages: options.batch.maxMessages, maxWaitMs: options.batch.maxWaitMs };
  operation['x-jetstream-dead-letter'] = deadLetterOf(handler);
  return operation;
}

function deadLetterOf(handler: DeclaredHandler): AsyncApiOperation['x-jetstream-dead-letter'] {
  const { dlq, durable } = handler.options;
  if (dlq === false) return false;
  if (handler.stream) {
    const target = resolveDeadLetterTarget(dlq, handler.stream, durable, handler.engineId);
    return target ? { stream: target.stream, subject: target.subject } : false;
  }
  if (typeof dlq === 'string') return { stream: DEFAULT_DEAD_LETTER_STREAM, subject: dlq };
  if (typeof dlq === 'object') return dlq.subject ? { stream: dlq.stream ?? DEFAULT_DEAD_LETTER_STREAM, subject: dlq.subject } : { stream: dlq.stream ?? DEFAULT_DEAD_LETTER_STREAM };
  return { stream: DEFAULT_DEAD_LETTER_STREAM };
}

function declaredSchedules(inventory: HandlerInventory): Array<{ connection: string; schedule: ScheduleDefinition; streams: readonly StreamDefinition[] }> {
  return inventory.connections.flatMap((c) => (c.options?.schedules ?? []).map((schedule) => ({ connection: c.name, schedule, streams: c.options?.streams ?? [] })));
}

function scheduleTiming(schedule: ScheduleDefinition): AsyncApiSchedule {
  const timing: AsyncApiSchedule = { name: schedule.name };
  if (schedule.cron !== undefined) timing.cron = schedule.cron;
  if (schedule.timeZone !== undefined) timing.timeZone = schedule.timeZone;
  if (schedule.every !== undefined) timing.every = schedule.every;
  if (schedule.at instanceof Date) timing.at = schedule.at.toISOString();
  if (schedule.payload !== undefined) timing.payload = schedule.payload;
  return timing;
}

function declaredStreams(inventory: HandlerInventory): AsyncApiStream[] {
  const out: AsyncApiStream[] = [];
  for (const connection of inventory.connections) {
    for (const stream of connection.options?.streams ?? []) {
      if (!out.some((s) => s.name === stream.name)) out.push({ name: stream.name, subjects: [...stream.subjects] });
    }
  }
  return out;
}

/** AsyncAPI keys allow letters, digits, `_`, `-` and `.`; subjects' wildcards are spelled out. */
function keyOf(text: string): string {
  return text.replace(/\*/g, 'star').replace(/>/g, 'all').replace(/[^A-Za-z0-9_-]/g, '_');
}

function uniqueKey(taken: Record<string, unknown>, base: string): string {
  let key = base;
  for (let n = 2; key in taken; n++) key = `${base}_${n}`;
  return key;
}
