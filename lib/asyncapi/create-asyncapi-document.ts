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
  AsyncApiServer,
  AsyncApiStream,
} from './asyncapi-document.js';
import { ClassSchemaRegistry } from './class-schema.js';
import { inventoryHandlers, type DeclaredHandler, type HandlerInventory } from './handler-inventory.js';

export interface AsyncApiOptions extends AsyncApiInfo {
  /** Servers to list, e.g. `{ production: { host: 'nats.example.com:4222', protocol: 'nats' } }`. */
  servers?: Record<string, AsyncApiServer>;
}

/**
 * An AsyncAPI 3.0 document of the application's `@OnEvent` handlers: a channel per subject, a
 * `receive` operation per handler (durable, delivery mode, retry and dead letters as
 * `x-jetstream-*` fields), and message payload schemas built from the payload classes'
 * class-validator decorators.
 *
 * Pass a running application (`app`), or the root module: it is then scanned in Nest's preview
 * mode, which instantiates no provider and opens no connection.
 */
export async function createAsyncApiDocument(
  source: INestApplicationContext | Type<unknown> | DynamicModule,
  options: AsyncApiOptions,
): Promise<AsyncApiDocument> {
  checkInfo(options);
  if (isApplicationContext(source)) return buildDocument(inventoryHandlers(source), options);
  const app = await NestFactory.createApplicationContext(source, { preview: true, logger: false, abortOnError: false });
  try {
    return buildDocument(inventoryHandlers(app), options);
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

  for (const handler of inventory.handlers) {
    let channelId = channelIds.get(handler.subject);
    if (!channelId) {
      channelId = uniqueKey(channels, keyOf(handler.subject));
      channelIds.set(handler.subject, channelId);
      channels[channelId] = channelFor(handler);
    }
    const channel = channels[channelId];
    if (handler.stream && !channel['x-jetstream-stream']) channel['x-jetstream-stream'] = handler.stream;

    const messageId = messageFor(handler, channelId, registry, messages);
    channel.messages[messageId] ??= { $ref: `#/components/messages/${messageId}` };

    const operationId = uniqueKey(operations, keyOf(handler.handlerId));
    operations[operationId] = operationFor(handler, channelId, messageId);
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

function channelFor(handler: DeclaredHandler): AsyncApiChannel {
  const parameters: Record<string, AsyncApiParameter> = {};
  const tokens = handler.subject.split('.').map((token, i) => {
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
    'x-jetstream-subject': handler.subject,
  };
}

function messageFor(
  handler: DeclaredHandler,
  channelId: string,
  registry: ClassSchemaRegistry,
  messages: Record<string, AsyncApiMessage>,
): string {
  const type = handler.payloadType;
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

function operationFor(handler: DeclaredHandler, channelId: string, messageId: string): AsyncApiOperation {
  const { options } = handler;
  const operation: AsyncApiOperation = {
    action: 'receive',
    channel: { $ref: `#/channels/${channelId}` },
    messages: [{ $ref: `#/channels/${channelId}/messages/${messageId}` }],
    summary: `${handler.handlerId} handles ${handler.subject}`,
    'x-jetstream-handler': handler.handlerId,
    'x-jetstream-connection': handler.connection,
    'x-jetstream-delivery': options.delivery,
    'x-jetstream-concurrency': options.concurrency,
    'x-jetstream-retry': options.retry.enabled ? { maxAttempts: options.retry.maxAttempts, backoff: options.retry.backoff } : false,
  };
  if (handler.stream) operation['x-jetstream-stream'] = handler.stream;
  if (options.durable) operation['x-jetstream-durable'] = options.durable;
  operation['x-jetstream-dead-letter'] = deadLetterOf(handler);
  return operation;
}

function deadLetterOf(handler: DeclaredHandler): AsyncApiOperation['x-jetstream-dead-letter'] {
  const { dlq, durable } = handler.options;
  if (dlq === false) return false;
  if (handler.stream) {
    const target = resolveDeadLetterTarget(dlq, handler.stream, durable ?? handler.handlerId.replace(/[^\w-]/g, '_'));
    return target ? { stream: target.stream, subject: target.subject } : false;
  }
  if (typeof dlq === 'string') return { stream: DEFAULT_DEAD_LETTER_STREAM, subject: dlq };
  if (typeof dlq === 'object') return dlq.subject ? { stream: dlq.stream ?? DEFAULT_DEAD_LETTER_STREAM, subject: dlq.subject } : { stream: dlq.stream ?? DEFAULT_DEAD_LETTER_STREAM };
  return { stream: DEFAULT_DEAD_LETTER_STREAM };
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
