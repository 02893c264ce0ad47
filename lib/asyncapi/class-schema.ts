import { getMetadataStorage } from 'class-validator';
import { plainToInstance } from 'class-transformer';
import type { JsonSchema } from './json-schema.js';

type Constructor = abstract new (...args: never[]) => unknown;

interface ValidationEntry {
  readonly type: string;
  readonly name?: string;
  readonly propertyName: string;
  readonly constraints?: readonly unknown[];
  readonly each?: boolean;
}

type Apply = (schema: JsonSchema, constraints: readonly unknown[]) => void;

const string = (format?: string): Apply => (s) => {
  s.type = 'string';
  if (format) s.format = format;
};

/**
 * class-validator decorators (by their registered name) and what each says in JSON Schema. A
 * decorator missing here is listed under `x-class-validator` instead of being dropped silently.
 */
const RULES: Readonly<Record<string, Apply>> = {
  isString: string(),
  isInt: (s) => (s.type = 'integer'),
  // isNumber after isInt must not widen an integer back to a number.
  isNumber: (s) => (s.type = s.type === 'integer' ? 'integer' : 'number'),
  isBoolean: (s) => (s.type = 'boolean'),
  isArray: (s) => (s.type = 'array'),
  isObject: (s) => (s.type = 'object'),
  isNotEmptyObject: (s) => (s.type = 'object'),
  // A Date travels as its ISO string in JSON.
  isDate: string('date-time'),
  isDateString: string('date-time'),
  isIso8601: string('date-time'),
  isRFC3339: string('date-time'),
  isEmail: string('email'),
  isUrl: string('uri'),
  isUuid: string('uuid'),
  isFqdn: string('hostname'),
  isIp: (s, [version]) => {
    s.type = 'string';
    if (String(version) === '4') s.format = 'ipv4';
    if (String(version) === '6') s.format = 'ipv6';
  },
  isIn: (s, [values]) => {
    if (Array.isArray(values)) setEnum(s, values);
  },
  isEnum: (s, [entity]) => {
    if (entity && typeof entity === 'object') setEnum(s, enumValues(entity as Record<string, unknown>));
  },
  equals: (s, [value]) => (s.const = value),
  min: (s, [n]) => (s.minimum = Number(n)),
  max: (s, [n]) => (s.maximum = Number(n)),
  isPositive: (s) => (s.exclusiveMinimum = 0),
  isNegative: (s) => (s.exclusiveMaximum = 0),
  isDivisibleBy: (s, [n]) => (s.multipleOf = Number(n)),
  isLength: (s, [min, max]) => {
    s.type ??= 'string';
    if (typeof min === 'number') s.minLength = min;
    if (typeof max === 'number') s.maxLength = max;
  },
  minLength: (s, [n]) => {
    s.type ??= 'string';
    s.minLength = Number(n);
  },
  maxLength: (s, [n]) => {
    s.type ??= 'string';
    s.maxLength = Number(n);
  },
  // minLength only constrains strings in JSON Schema, so it is harmless on other types.
  isNotEmpty: (s) => (s.minLength = Math.max(1, s.minLength ?? 0)),
  arrayMinSize: (s, [n]) => (s.minItems = Number(n)),
  arrayMaxSize: (s, [n]) => (s.maxItems = Number(n)),
  arrayNotEmpty: (s) => (s.minItems = Math.max(1, s.minItems ?? 0)),
  arrayUnique: (s) => (s.uniqueItems = true),
};

function setEnum(s: JsonSchema, values: readonly unknown[]): void {
  s.enum = [...values];
  if (s.type) return;
  if (values.every((v) => typeof v === 'string')) s.type = 'string';
  else if (values.every((v) => typeof v === 'number')) s.type = 'number';
}

/** Values of a TypeScript enum, without the reverse (number → name) entries of numeric enums. */
function enumValues(entity: Record<string, unknown>): unknown[] {
  return Object.keys(entity)
    .filter((key) => !/^\d+$/.test(key))
    .map((key) => entity[key]);
}

function note(s: JsonSchema, text: string): void {
  s['x-class-validator'] = [...(s['x-class-validator'] ?? []), text];
}

function describeRule(name: string, constraints: readonly unknown[] | undefined): string {
  const shown = (constraints ?? []).filter((c) => c !== undefined && typeof c !== 'function');
  if (shown.length === 0) return name;
  return `${name}(${shown.map((c) => (c instanceof RegExp ? String(c) : JSON.stringify(c))).join(', ')})`;
}

/**
 * Turns payload classes into JSON Schemas from the class-validator metadata their decorators
 * registered (the same metadata the payload pipe validates with), so the document and the
 * validation cannot disagree. Each class becomes one named schema; nested classes
 * (`@ValidateNested()` + `@Type(() => Item)`) are referenced, cycles included.
 */
export class ClassSchemaRegistry {
  /** Named schemas, in the order they were first met. */
  readonly schemas: Record<string, JsonSchema> = {};
  private readonly names = new Map<Constructor, string>();

  constructor(private readonly refPrefix = '#/components/schemas/') {}

  /** True when the type is a class worth a named schema (not a built-in like String or Object). */
  static isPayloadClass(type: unknown): type is Constructor {
    return typeof type === 'function' && !BUILT_INS.has(type) && type.prototype !== undefined;
  }

  /** The schema of a declared payload type: a `$ref` for classes, inline for built-ins. */
  schemaFor(type: unknown): JsonSchema {
    if (ClassSchemaRegistry.isPayloadClass(type)) return { $ref: `${this.refPrefix}${this.register(type)}` };
    return builtInSchema(type);
  }

  /** Name under which the class's schema is (or now gets) registered. */
  register(cls: Constructor): string {
    const known = this.names.get(cls);
    if (known) return known;
    const name = this.uniqueName(cls.name);
    this.names.set(cls, name);
    // Registered before converting, so a class that refers to itself finds its own name.
    this.schemas[name] = {};
    this.schemas[name] = this.convert(cls);
    return name;
  }

  private uniqueName(className: string): string {
    const base = className.replace(/[^A-Za-z0-9_.-]/g, '_') || 'Payload';
    let name = base;
    for (let n = 2; name in this.schemas; n++) name = `${base}_${n}`;
    return name;
  }

  private convert(cls: Constructor): JsonSchema {
    const entries = getMetadataStorage().getTargetValidationMetadatas(cls, '', true, false) as unknown as ValidationEntry[];
    const byProperty = new Map<string, ValidationEntry[]>();
    for (const entry of entries) {
      const list = byProperty.get(entry.propertyName) ?? [];
      list.push(entry);
      byProperty.set(entry.propertyName, list);
    }
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (const [property, list] of byProperty) {
      const { schema, optional } = this.property(cls, property, list);
      properties[property] = schema;
      if (!optional) required.push(property);
    }
    const schema: JsonSchema = cls.name ? { type: 'object', title: cls.name, properties } : { type: 'object', properties };
    if (required.length > 0) schema.required = required;
    return schema;
  }

  private property(cls: Constructor, property: string, entries: ValidationEntry[]): { schema: JsonSchema; optional: boolean } {
    const schema: JsonSchema = {};
    let items: JsonSchema | undefined;
    let optional = false;
    let defined = false;
    let nested = false;
    for (const entry of entries) {
      const target = entry.each ? (items ??= {}) : schema;
      switch (entry.type) {
        case 'conditionalValidation':
          // @IsOptional, and @ValidateIf whose condition the document cannot evaluate.
          optional = true;
          break;
        case 'isDefined':
          defined = true;
          break;
        case 'nestedValidation':
          nested = true;
          break;
        case 'whitelist':
          break;
        case 'customValidation': {
          const rule = entry.name ? RULES[entry.name] : undefined;
          if (entry.name === 'matches') this.pattern(target, entry.constraints ?? []);
          else if (rule) rule(target, entry.constraints ?? []);
          else note(target, describeRule(entry.name ?? 'custom', entry.constraints));
          break;
        }
        default:
          note(target, entry.name ?? entry.type);
      }
    }
    const declared: unknown = Reflect.getMetadata('design:type', cls.prototype as object, property);
    if (nested) {
      const element = nestedClass(cls, property) ?? (ClassSchemaRegistry.isPayloadClass(declared) ? declared : undefined);
      if (element) {
        const ref = this.schemaFor(element);
        if (declared === Array || schema.type === 'array' || items) {
          schema.type = 'array';
          items = { ...ref, ...(items ?? {}) };
        } else {
          Object.assign(schema, ref);
        }
      }
    }
    if (items) {
      schema.type = 'array';
      schema.items = items;
    }
    if (!schema.type && !schema.$ref && schema.enum === undefined && schema.const === undefined) {
      Object.assign(schema, this.declaredSchema(declared));
    }
    return { schema, optional: optional && !defined };
  }

  private pattern(s: JsonSchema, [pattern, modifiers]: readonly unknown[]): void {
    const regex = pattern instanceof RegExp ? pattern : typeof pattern === 'string' ? new RegExp(pattern, typeof modifiers === 'string' ? modifiers : '') : undefined;
    if (!regex) return;
    s.type ??= 'string';
    s.pattern = regex.source;
    // JSON Schema patterns have no flags; keep the exact rule visible.
    if (regex.flags) note(s, `matches(${String(regex)})`);
  }

  private declaredSchema(declared: unknown): JsonSchema {
    if (ClassSchemaRegistry.isPayloadClass(declared)) return this.schemaFor(declared);
    return builtInSchema(declared);
  }
}

const BUILT_INS = new Set<unknown>([Object, String, Number, Boolean, Array, Date, Function, Promise, Map, Set, Symbol, BigInt, Uint8Array, Buffer]);

function builtInSchema(type: unknown): JsonSchema {
  switch (type) {
    case String:
      return { type: 'string' };
    case Number:
      return { type: 'number' };
    case Boolean:
      return { type: 'boolean' };
    case Array:
      return { type: 'array' };
    case Date:
      return { type: 'string', format: 'date-time' };
    case Uint8Array:
    case Buffer:
      return { type: 'string', description: 'raw bytes, not JSON' };
    default:
      // Object, interfaces and `unknown` erase to Object or nothing: any JSON value.
      return {};
  }
}

/**
 * The class `@Type(() => X)` names for a property. class-transformer keeps its metadata store
 * private, so ask its public API: transform a one-element array and look at what came out.
 */
function nestedClass(cls: Constructor, property: string): Constructor | undefined {
  try {
    const probe = plainToInstance(cls as unknown as new () => object, { [property]: [{}] }) as Record<string, unknown>;
    const value = probe[property];
    const element: unknown = Array.isArray(value) ? value[0] : undefined;
    const ctor: unknown = element && typeof element === 'object' ? element.constructor : undefined;
    return ClassSchemaRegistry.isPayloadClass(ctor) ? ctor : undefined;
  } catch {
    return undefined;
  }
}
