import 'reflect-metadata';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Controller, Injectable, Module } from '@nestjs/common';
import { Ctx, EventPattern, MessagePattern, Payload, Transport } from '@nestjs/microservices';
import { Type } from 'class-transformer';
import {
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsDateString,
  IsEmail,
  IsEnum,
  IsIn,
  IsInt,
  IsNumber,
  IsOptional,
  IsPositive,
  IsString,
  IsUUID,
  Length,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
  IsHexColor,
  ValidateNested,
} from 'class-validator';
import { ClassSchemaRegistry } from '../../lib/asyncapi/class-schema.js';
import { createAsyncApiDocument, EventContext, JetStreamModule, OnEvent, type AsyncApiDocument } from '../../lib/index.js';
import { JETSTREAM_TRANSPORT, JetStreamRequestContext } from '../../lib/transport/index.js';
import { asyncApiSchemaErrors } from '../support/asyncapi-validator.js';

enum Priority {
  Low,
  High,
}
enum Channel {
  Email = 'email',
  Sms = 'sms',
}

class Line {
  @IsString() sku!: string;
  @IsInt() @Min(1) @Max(99) qty!: number;
}

class Address {
  @IsString() @MinLength(1) @MaxLength(80) street!: string;
  @IsOptional() @IsString() @Length(2, 2) country?: string;
}

class OrderPlaced {
  @IsUUID() id!: string;
  @IsEmail() email!: string;
  @IsDateString() placedAt!: string;
  @IsNumber() @IsPositive() total!: number;
  @IsBoolean() gift!: boolean;
  @IsIn(['web', 'app']) source!: string;
  @IsEnum(Priority) priority!: Priority;
  @IsEnum(Channel) notify!: Channel;
  @Matches(/^[A-Z]{3}$/) currency!: string;
  @IsOptional() @Matches(/^x/i) code?: string;
  @IsArray() @ArrayMinSize(1) @ValidateNested({ each: true }) @Type(() => Line) lines!: Line[];
  @ValidateNested() @Type(() => Address) shipTo!: Address;
  @IsString({ each: true }) tags!: string[];
  @IsHexColor() colour!: string;
}

/** Refers to itself: the schema must reference its own name, not recurse forever. */
class TreeNode {
  @IsString() label!: string;
  @IsOptional() @ValidateNested({ each: true }) @Type(() => TreeNode) children?: TreeNode[];
}

/** Resolves a local JSON pointer (`#/a/b`) in the document, or undefined. */
function resolveRef(doc: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  return ref
    .slice(2)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<unknown>((node, key) => (node && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined), doc);
}

function allRefs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => allRefs(n, out));
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') out.push(value);
      else allRefs(value, out);
    }
  }
  return out;
}

/**
 * Valid against the official AsyncAPI 3.0.0 JSON Schema, plus what that schema cannot check:
 * every `$ref` points somewhere real, operations use their channel's messages, parameters match.
 */
function expectValidAsyncApi3(doc: AsyncApiDocument): void {
  expect(asyncApiSchemaErrors(doc)).toEqual([]);
  expect(doc.asyncapi).toBe('3.0.0');
  expect(typeof doc.info.title).toBe('string');
  expect(typeof doc.info.version).toBe('string');
  const key = /^[A-Za-z0-9_.-]+$/;
  for (const [id, channel] of Object.entries(doc.channels)) {
    expect(id).toMatch(key);
    // null: unknown upfront (a reply inbox, an object pattern).
    expect(channel.address === null || typeof channel.address === 'string').toBe(true);
    // Every {parameter} in an address is declared, and only those.
    const used = [...(channel.address ?? '').matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
    expect(Object.keys(channel.parameters ?? {}).sort()).toEqual(used);
  }
  for (const [id, op] of Object.entries(doc.operations)) {
    expect(id).toMatch(key);
    expect(['send', 'receive']).toContain(op.action);
    expect(op.channel.$ref).toMatch(/^#\/channels\/[^/]+$/);
    // AsyncAPI 3.0: an operation's messages must be messages of its channel.
    for (const m of op.messages) expect(m.$ref.startsWith(`${op.channel.$ref}/messages/`)).toBe(true);
    // Likewise a reply's messages are messages of the reply's channel.
    if (op.reply) for (const m of op.reply.messages) expect(m.$ref.startsWith(`${op.reply.channel.$ref}/messages/`)).toBe(true);
  }
  for (const id of [...Object.keys(doc.components.messages), ...Object.keys(doc.components.schemas)]) expect(id).toMatch(key);
  for (const ref of allRefs(doc)) {
    if (resolveRef(doc, ref) === undefined) throw new Error(`dangling $ref ${ref}`);
  }
  // A document is plain JSON: it survives a round trip unchanged.
  expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
}

describe('JSON Schema from class-validator metadata', () => {
  it('maps the common decorators to JSON Schema keywords, nested classes to $refs', () => {
    const registry = new ClassSchemaRegistry();
    expect(registry.schemaFor(OrderPlaced)).toEqual({ $ref: '#/components/schemas/OrderPlaced' });
    const s = registry.schemas;
    expect(s.OrderPlaced).toEqual({
      type: 'object',
      title: 'OrderPlaced',
      properties: {
        id: { type: 'string', format: 'uuid' },
        email: { type: 'string', format: 'email' },
        placedAt: { type: 'string', format: 'date-time' },
        total: { type: 'number', exclusiveMinimum: 0 },
        gift: { type: 'boolean' },
        source: { type: 'string', enum: ['web', 'app'] },
        priority: { type: 'number', enum: [0, 1] },
        notify: { type: 'string', enum: ['email', 'sms'] },
        currency: { type: 'string', pattern: '^[A-Z]{3}$' },
        code: { type: 'string', pattern: '^x', 'x-class-validator': ['matches(/^x/i)'] },
        lines: { type: 'array', minItems: 1, items: { $ref: '#/components/schemas/Line' } },
        shipTo: { $ref: '#/components/schemas/Address' },
        tags: { type: 'array', items: { type: 'string' } },
        colour: { type: 'string', 'x-class-validator': ['isHexColor'] },
      },
      required: ['id', 'email', 'placedAt', 'total', 'gift', 'source', 'priority', 'notify', 'currency', 'lines', 'shipTo', 'tags', 'colour'],
    });
    expect(s.Line).toEqual({
      type: 'object',
      title: 'Line',
      properties: { sku: { type: 'string' }, qty: { type: 'integer', minimum: 1, maximum: 99 } },
      required: ['sku', 'qty'],
    });
    expect(s.Address).toEqual({
      type: 'object',
      title: 'Address',
      properties: { street: { type: 'string', minLength: 1, maxLength: 80 }, country: { type: 'string', minLength: 2, maxLength: 2 } },
      required: ['street'],
    });
  });

  it('handles self-reference, built-in types and same-named classes', () => {
    const registry = new ClassSchemaRegistry();
    registry.schemaFor(TreeNode);
    expect(registry.schemas.TreeNode.properties?.children).toEqual({ type: 'array', items: { $ref: '#/components/schemas/TreeNode' } });
    expect(registry.schemas.TreeNode.required).toEqual(['label']);

    expect(registry.schemaFor(String)).toEqual({ type: 'string' });
    expect(registry.schemaFor(Object)).toEqual({});
    expect(registry.schemaFor(undefined)).toEqual({});

    const Other = (() => {
      class Line {
        @IsBoolean() other!: boolean;
      }
      return Line;
    })();
    registry.schemaFor(Line);
    expect(registry.schemaFor(Other)).toEqual({ $ref: '#/components/schemas/Line_2' });
    expect(registry.schemas.Line_2.properties).toEqual({ other: { type: 'boolean' } });
  });

  it('falls back to the declared TypeScript type when no validator names one', () => {
    class Loose {
      @IsOptional() note?: string;
      @IsOptional() count?: number;
      @IsOptional() at?: Date;
    }
    const registry = new ClassSchemaRegistry();
    registry.schemaFor(Loose);
    expect(registry.schemas.Loose.properties).toEqual({
      note: { type: 'string' },
      count: { type: 'number' },
      at: { type: 'string', format: 'date-time' },
    });
    expect(registry.schemas.Loose.required).toBeUndefined();
  });
});

class ShipmentSent {
  @IsString() orderId!: string;
}

@Injectable()
class Billing {
  @OnEvent('orders.placed', { durable: 'billing', delivery: 'exactly-once' })
  charge(_order: OrderPlaced, _ctx: EventContext): void {}

  @OnEvent('orders.*.audit')
  audit(_payload: unknown): void {}
}

@Controller()
class Shipping {
  @OnEvent('shipments.>', { durable: 'shipping', retry: false, dlq: { stream: 'SHIP_DLQ' } })
  sent(_event: ShipmentSent): void {}

  @OnEvent('orders.placed', { durable: 'shipping-orders', stream: 'ORDERS' })
  prepare(_order: OrderPlaced): void {}
}

@Module({
  imports: [
    // An unreachable server: the document is built without connecting anywhere.
    JetStreamModule.forRoot({
      servers: 'nats://127.0.0.1:1',
      streams: [
        { name: 'ORDERS', subjects: ['orders.>'] },
        { name: 'SHIPMENTS', subjects: ['shipments.>'] },
      ],
      defaults: { concurrency: 4 },
    }),
  ],
  providers: [Billing],
  controllers: [Shipping],
})
class AppModule {}

describe('createAsyncApiDocument', () => {
  it('documents every @OnEvent of a module without connecting', async () => {
    const doc = await createAsyncApiDocument(AppModule, { title: 'Orders', version: '2.1.0', description: 'Order events' });
    expectValidAsyncApi3(doc);
    expect(doc.info).toEqual({ title: 'Orders', version: '2.1.0', description: 'Order events' });
    expect(doc.defaultContentType).toBe('application/json');
    expect(doc['x-jetstream-streams']).toEqual([
      { name: 'ORDERS', subjects: ['orders.>'] },
      { name: 'SHIPMENTS', subjects: ['shipments.>'] },
    ]);

    // One channel per subject, shared by the two handlers of orders.placed.
    expect(Object.keys(doc.channels).sort()).toEqual(['orders_placed', 'orders_star_audit', 'shipments_all']);
    expect(doc.channels.orders_placed).toEqual({
      address: 'orders.placed',
      messages: { OrderPlaced: { $ref: '#/components/messages/OrderPlaced' } },
      'x-jetstream-subject': 'orders.placed',
      'x-jetstream-stream': 'ORDERS',
    });
    expect(doc.channels.orders_star_audit.address).toBe('orders.{token2}.audit');
    expect(doc.channels.shipments_all.address).toBe('shipments.{rest}');

    expect(doc.operations.Billing_charge).toEqual({
      action: 'receive',
      channel: { $ref: '#/channels/orders_placed' },
      messages: [{ $ref: '#/channels/orders_placed/messages/OrderPlaced' }],
      summary: 'Billing.charge handles orders.placed',
      'x-jetstream-source': '@OnEvent',
      'x-jetstream-handler': 'Billing.charge',
      'x-jetstream-connection': 'default',
      'x-jetstream-stream': 'ORDERS',
      'x-jetstream-durable': 'billing',
      'x-jetstream-delivery': 'exactly-once',
      'x-jetstream-concurrency': 4,
      'x-jetstream-retry': { maxAttempts: 5, backoff: 'exponential' },
      'x-jetstream-dead-letter': { stream: 'DLQ', subject: 'dlq.ORDERS.billing' },
    });
    // Ephemeral: no durable, no dead letters by default; an untyped payload gets an open schema.
    const audit = doc.operations.Billing_audit;
    expect(audit['x-jetstream-durable']).toBeUndefined();
    expect(audit['x-jetstream-dead-letter']).toBe(false);
    expect(doc.components.messages[audit.messages[0].$ref.split('/').pop()!].payload).toEqual({});

    const sent = doc.operations.Shipping_sent;
    expect(sent['x-jetstream-retry']).toBe(false);
    expect(sent['x-jetstream-dead-letter']).toEqual({ stream: 'SHIP_DLQ', subject: 'dlq.SHIPMENTS.shipping' });
    expect(doc.operations.Shipping_prepare['x-jetstream-durable']).toBe('shipping-orders');

    expect(doc.components.messages.OrderPlaced).toEqual({
      name: 'OrderPlaced',
      title: 'OrderPlaced',
      contentType: 'application/json',
      payload: { $ref: '#/components/schemas/OrderPlaced' },
    });
    expect(Object.keys(doc.components.schemas).sort()).toEqual(['Address', 'Line', 'OrderPlaced', 'ShipmentSent']);
  });

  it('lists servers when given, and rejects a document without title or version', async () => {
    const doc = await createAsyncApiDocument(AppModule, {
      title: 'Orders',
      version: '1',
      servers: { production: { host: 'nats.example.com:4222', protocol: 'nats' } },
    });
    expect(doc.servers).toEqual({ production: { host: 'nats.example.com:4222', protocol: 'nats' } });
    expectValidAsyncApi3(doc);
    await expect(createAsyncApiDocument(AppModule, { title: '', version: '1' })).rejects.toThrow(/title must be a non-empty string/);
    await expect(createAsyncApiDocument(AppModule, { title: 'x' } as never)).rejects.toThrow(/version must be a non-empty string/);
  });

  it('fails like bootstrap would on an invalid handler option', async () => {
    class Bad {
      @OnEvent('orders.placed', { durable: 'has.dot' })
      handle(): void {}
    }
    @Module({ providers: [Bad] })
    class BadModule {}
    await expect(createAsyncApiDocument(BadModule, { title: 'x', version: '1' })).rejects.toThrow(/Bad\.handle: durable must match/);
  });
});

describe('AsyncAPI 3.0.0 JSON Schema validation', () => {
  it('is not vacuous: the official schema rejects broken documents', async () => {
    const doc = await createAsyncApiDocument(AppModule, { title: 'Orders', version: '1' });
    expect(asyncApiSchemaErrors(doc)).toEqual([]);
    const broken = (mutate: (d: Record<string, any>) => void): string[] => {
      const copy = JSON.parse(JSON.stringify(doc)) as Record<string, any>;
      mutate(copy);
      return asyncApiSchemaErrors(copy);
    };
    expect(broken((d) => (d.asyncapi = '2.6.0')).join('\n')).toMatch(/asyncapi/);
    expect(broken((d) => (d.operations.Billing_charge.action = 'publish')).join('\n')).toMatch(/operations\/Billing_charge\/action/);
    expect(broken((d) => delete d.operations.Billing_charge.channel).join('\n')).toMatch(/channel/);
    expect(broken((d) => (d.components.messages.OrderPlaced.contentType = 42)).join('\n')).toMatch(/components\/messages\/OrderPlaced/);
    expect(broken((d) => (d.components.schemas.Line.type = 'strnig')).join('\n')).toMatch(/components\/schemas\/Line/);
    expect(broken((d) => (d.operations.Billing_charge.reply = { address: { location: 'inbox' } })).join('\n')).toMatch(/reply/);
  });

  it('accepts documents with self-referencing payloads, untyped payloads and servers', async () => {
    @Injectable()
    class Trees {
      @OnEvent('trees.>', { durable: 'trees' })
      grow(_node: TreeNode): void {}

      @OnEvent('trees.*.pruned')
      pruned(_anything: unknown): void {}

      @OnEvent('trees.*.pruned', { durable: 'pruned-audit' })
      audit(_anything: unknown): void {}
    }
    @Module({ providers: [Trees] })
    class TreeModule {}
    const doc = await createAsyncApiDocument(TreeModule, {
      title: 'Trees',
      version: '0.1.0',
      servers: { local: { host: '127.0.0.1:4222', protocol: 'nats', description: 'dev' } },
    });
    expectValidAsyncApi3(doc);
    expect(Object.keys(doc.components.schemas)).toEqual(['TreeNode']);
    // Two handlers of one subject share its channel and its one message.
    expect(Object.keys(doc.channels)).toEqual(['trees_all', 'trees_star_pruned']);
    expect(Object.keys(doc.channels.trees_star_pruned.messages)).toEqual(['trees_star_pruned_payload']);
    expect(doc.operations.Trees_pruned.channel).toEqual(doc.operations.Trees_audit.channel);
  });
});

class SumRequest {
  @IsInt({ each: true }) @ArrayMinSize(1) terms!: number[];
}
class SumResult {
  @IsInt() total!: number;
}
class InventoryChanged {
  @IsString() sku!: string;
  @IsInt() delta!: number;
}

@Controller()
class InventoryController {
  @EventPattern('inventory.*.changed', { durable: 'inventory', retry: { maxAttempts: 2 } })
  changed(@Payload() _event: InventoryChanged): void {}

  // Bound to this transport, and a second handler of the same subject.
  @EventPattern('inventory.*.changed', JETSTREAM_TRANSPORT)
  mirror(_event: InventoryChanged): void {}

  // Another transport serves this one; JetStreamServer never sees it.
  @EventPattern('inventory.tcp', Transport.TCP)
  overTcp(_event: unknown): void {}

  // The payload is not the first parameter: @Payload() says which one.
  @MessagePattern('math.sum')
  sum(@Ctx() _ctx: JetStreamRequestContext, @Payload() _request: SumRequest): SumResult {
    return { total: 0 };
  }

  @MessagePattern({ cmd: 'ping', v: 1 })
  async ping(): Promise<string> {
    return 'pong';
  }

  @OnEvent('inventory.*.changed', { durable: 'inventory-on-event' })
  onEvent(_event: InventoryChanged): void {}
}

@Injectable()
class NotAController {
  // Nest binds pattern handlers on controllers only.
  @EventPattern('ignored.subject')
  ignored(_data: unknown): void {}
}

@Module({ controllers: [InventoryController], providers: [NotAController] })
class MicroserviceModule {}

describe('@EventPattern and @MessagePattern of the microservices transport', () => {
  it('documents event patterns as receive operations with their consumer options', async () => {
    const doc = await createAsyncApiDocument(MicroserviceModule, {
      title: 'Inventory',
      version: '1',
      transport: { streams: [{ name: 'INVENTORY', subjects: ['inventory.>'] }], defaults: { concurrency: 3 } },
    });
    expectValidAsyncApi3(doc);

    expect(Object.keys(doc.operations).sort()).toEqual([
      'InventoryController_changed',
      'InventoryController_mirror',
      'InventoryController_onEvent',
      'InventoryController_ping',
      'InventoryController_sum',
    ]);
    // One channel for the subject, shared by @EventPattern and @OnEvent handlers alike.
    const channel = doc.channels.inventory_star_changed;
    expect(channel).toMatchObject({
      address: 'inventory.{token2}.changed',
      messages: { InventoryChanged: { $ref: '#/components/messages/InventoryChanged' } },
      'x-jetstream-subject': 'inventory.*.changed',
      'x-jetstream-stream': 'INVENTORY',
    });
    expect(doc.operations.InventoryController_changed).toEqual({
      action: 'receive',
      channel: { $ref: '#/channels/inventory_star_changed' },
      messages: [{ $ref: '#/channels/inventory_star_changed/messages/InventoryChanged' }],
      summary: 'InventoryController.changed handles inventory.*.changed',
      'x-jetstream-source': '@EventPattern',
      'x-jetstream-handler': 'InventoryController.changed',
      'x-jetstream-stream': 'INVENTORY',
      'x-jetstream-durable': 'inventory',
      'x-jetstream-delivery': 'at-least-once',
      'x-jetstream-concurrency': 3,
      'x-jetstream-retry': { maxAttempts: 2, backoff: 'exponential' },
      'x-jetstream-dead-letter': { stream: 'DLQ', subject: 'dlq.INVENTORY.inventory' },
    });
    // An ephemeral pattern consumer: named after the server's handler id, as the engine names it.
    expect(doc.operations.InventoryController_mirror['x-jetstream-durable']).toBeUndefined();
    expect(doc.operations.InventoryController_mirror['x-jetstream-source']).toBe('@EventPattern');
    // @OnEvent handlers are not given the transport's defaults: they use their module's.
    expect(doc.operations.InventoryController_onEvent['x-jetstream-concurrency']).toBe(1);
    expect(doc.operations.InventoryController_onEvent['x-jetstream-connection']).toBe('default');
    expect(doc.operations.InventoryController_changed['x-jetstream-connection']).toBeUndefined();

    const addresses = Object.values(doc.channels).map((c) => c['x-jetstream-subject']);
    expect(addresses).not.toContain('inventory.tcp');
    expect(addresses).not.toContain('ignored.subject');
  });

  it('documents message patterns as receive operations with a reply on the requester\'s inbox', async () => {
    const doc = await createAsyncApiDocument(MicroserviceModule, { title: 'Inventory', version: '1' });
    expectValidAsyncApi3(doc);
    const sum = doc.operations.InventoryController_sum;
    expect(sum).toEqual({
      action: 'receive',
      channel: { $ref: '#/channels/math_sum' },
      messages: [{ $ref: '#/channels/math_sum/messages/SumRequest' }],
      summary: 'InventoryController.sum answers requests on math.sum',
      reply: {
        channel: { $ref: '#/channels/InventoryController_sum_reply' },
        messages: [{ $ref: '#/channels/InventoryController_sum_reply/messages/InventoryController_sum_reply' }],
      },
      'x-jetstream-source': '@MessagePattern',
      'x-jetstream-handler': 'InventoryController.sum',
    });
    expect(doc.channels.math_sum).toEqual({
      address: 'math.sum',
      messages: { SumRequest: { $ref: '#/components/messages/SumRequest' } },
      'x-jetstream-subject': 'math.sum',
    });
    expect(doc.channels.InventoryController_sum_reply).toMatchObject({ address: null, messages: { InventoryController_sum_reply: expect.anything() } });
    expect(doc.components.schemas.SumRequest.properties).toEqual({ terms: { type: 'array', minItems: 1, items: { type: 'integer' } } });
    // The reply is JetStreamServer's envelope: the typed result, or the error.
    const reply = doc.components.messages.InventoryController_sum_reply.payload;
    expect(reply).toEqual({
      oneOf: [
        expect.objectContaining({ properties: { response: { $ref: '#/components/schemas/SumResult' } }, additionalProperties: false }),
        expect.objectContaining({ properties: { err: {} }, required: ['err'], additionalProperties: false }),
      ],
    });
    expect(doc.components.schemas.SumResult.required).toEqual(['total']);

    // An object pattern is subscribed to as Nest's route string; its braces are no address.
    const ping = doc.operations.InventoryController_ping;
    const pingChannel = doc.channels[ping.channel.$ref.split('/').pop()!];
    expect(pingChannel).toMatchObject({ address: null, 'x-jetstream-subject': '{"cmd":"ping","v":1}' });
    // A Promise says nothing about what it resolves to.
    const pingReply = doc.components.messages[ping.reply!.messages[0].$ref.split('/').pop()!].payload as { oneOf: Array<{ properties: object }> };
    expect(pingReply.oneOf[0].properties).toEqual({ response: {} });
    expect(Object.keys(doc.components.schemas)).not.toContain('Promise');
  });

  it('fails like JetStreamServer would on a pattern that is no valid subject', async () => {
    @Controller()
    class BadPatterns {
      @EventPattern('orders..placed')
      handle(_data: unknown): void {}
    }
    @Module({ controllers: [BadPatterns] })
    class BadPatternModule {}
    await expect(createAsyncApiDocument(BadPatternModule, { title: 'x', version: '1' })).rejects.toThrow(
      /@EventPattern on BadPatterns\.handle: .*empty tokens/,
    );
  });

  it('reads the microservices metadata without importing the optional @nestjs/microservices peer', () => {
    const dir = join(process.cwd(), 'lib/asyncapi');
    for (const file of readdirSync(dir)) {
      expect({ file, imports: /from '@nestjs\/microservices/.test(readFileSync(join(dir, file), 'utf8')) }).toEqual({ file, imports: false });
    }
  });
});

describe('batch handlers in the AsyncAPI document', () => {
  it('documents the message as one item of the batch, with the batch limits', async () => {
    @Injectable()
    class Analytics {
      @OnEvent('quotes.*', { durable: 'analytics', batch: { maxMessages: 100, maxWaitMs: 50, payloadType: Line } })
      ingest(_lines: Line[]): void {}
    }
    @Module({ imports: [JetStreamModule.forRoot({ streams: [{ name: 'QUOTES', subjects: ['quotes.>'] }] })], providers: [Analytics] })
    class BatchModule {}
    const doc = await createAsyncApiDocument(BatchModule, { title: 'Quotes', version: '1' });
    const op = doc.operations.Analytics_ingest;
    expect(op['x-jetstream-batch']).toEqual({ maxMessages: 100, maxWaitMs: 50 });
    const message = doc.components.messages[op.messages[0].$ref.split('/').pop()!];
    expect(message.payload).toEqual({ $ref: '#/components/schemas/Line' });
    expect(await asyncApiSchemaErrors(doc)).toEqual([]);
  });
});

describe('schedules in the AsyncAPI document', () => {
  it('documents each declared schedule as a send operation on its target channel: timing, stream, payload', async () => {
    @Injectable()
    class Reports {
      @OnEvent('reports.daily', { durable: 'reports' })
      daily(_report: OrderPlaced): void {}
    }
    @Module({
      imports: [
        JetStreamModule.forRoot({
          servers: 'nats://127.0.0.1:1',
          streams: [{ name: 'REPORTS', subjects: ['reports.>'], allow_msg_schedules: true }],
          schedules: [
            // Fires onto a handled subject: it sends the handler's message (the class's schema).
            { name: 'daily-report', subject: 'reports.daily', cron: '0 0 6 * * *', timeZone: 'Europe/Paris', payload: { kind: 'daily' } },
            // Nobody handles it here: its own message, the declared payload as a const.
            { name: 'heartbeat', subject: 'reports.heartbeat', every: '30s', payload: { beat: true } },
            { name: 'new-year', subject: 'reports.once', at: new Date('2027-01-01T00:00:00Z') },
          ],
        }),
      ],
      providers: [Reports],
    })
    class ScheduleModule {}
    const doc = await createAsyncApiDocument(ScheduleModule, { title: 'Reports', version: '1' });
    expectValidAsyncApi3(doc);
    expect(await asyncApiSchemaErrors(doc)).toEqual([]);

    expect(doc.operations['schedule_daily-report']).toEqual({
      action: 'send',
      channel: { $ref: '#/channels/reports_daily' },
      messages: [{ $ref: '#/channels/reports_daily/messages/OrderPlaced' }],
      summary: 'nats-server fires schedule "daily-report" onto reports.daily: cron 0 0 6 * * * (Europe/Paris)',
      'x-jetstream-source': 'forRoot({ schedules })',
      'x-jetstream-connection': 'default',
      'x-jetstream-stream': 'REPORTS',
      'x-jetstream-schedule': { name: 'daily-report', cron: '0 0 6 * * *', timeZone: 'Europe/Paris', payload: { kind: 'daily' } },
    });
    const heartbeat = doc.operations.schedule_heartbeat;
    expect(heartbeat.summary).toBe('nats-server fires schedule "heartbeat" onto reports.heartbeat: every 30s');
    expect(heartbeat['x-jetstream-schedule']).toEqual({ name: 'heartbeat', every: '30s', payload: { beat: true } });
    expect(doc.components.messages[heartbeat.messages[0].$ref.split('/').pop()!]).toEqual({
      name: 'heartbeat_fire',
      title: 'What schedule heartbeat publishes',
      contentType: 'application/json',
      payload: { const: { beat: true } },
    });
    const once = doc.operations['schedule_new-year'];
    expect(once['x-jetstream-schedule']).toEqual({ name: 'new-year', at: '2027-01-01T00:00:00.000Z' });
    expect(doc.components.messages[once.messages[0].$ref.split('/').pop()!].payload).toEqual({ description: 'An empty body' });
    // The handler's receive operation is unchanged beside it.
    expect(doc.operations.Reports_daily.action).toBe('receive');
  });
});
