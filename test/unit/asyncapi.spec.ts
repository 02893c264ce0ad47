import 'reflect-metadata';
import { Controller, Injectable, Module } from '@nestjs/common';
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
    expect(typeof channel.address).toBe('string');
    // Every {parameter} in an address is declared, and only those.
    const used = [...channel.address.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
    expect(Object.keys(channel.parameters ?? {}).sort()).toEqual(used);
  }
  for (const [id, op] of Object.entries(doc.operations)) {
    expect(id).toMatch(key);
    expect(['send', 'receive']).toContain(op.action);
    expect(op.channel.$ref).toMatch(/^#\/channels\/[^/]+$/);
    // AsyncAPI 3.0: an operation's messages must be messages of its channel.
    for (const m of op.messages) expect(m.$ref.startsWith(`${op.channel.$ref}/messages/`)).toBe(true);
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
