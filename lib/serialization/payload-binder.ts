import { plainToInstance, type ClassConstructor, type ClassTransformOptions } from 'class-transformer';
import { validate, type ValidationError, type ValidatorOptions } from 'class-validator';
import { PayloadValidationError } from '../errors/jetstream-errors.js';
import { decodeJson } from './codec.js';

/** Turns message bytes into the handler's first argument. */
export interface PayloadBinder {
  /** True when handlers get the bytes themselves. */
  readonly raw: boolean;
  fromBytes(data: Uint8Array): unknown;
  /** For callers that already parsed the JSON (ordering lanes). */
  fromDecoded(plain: unknown): unknown;
}

// Declared types that say nothing about shape: the payload is passed on as parsed JSON.
const PLAIN_TYPES = new Set<unknown>([undefined, Object, Number, String, Boolean, Array, Promise, Function, Symbol, BigInt]);

export interface BinderOptions {
  readonly validation: ValidatorOptions | false;
  readonly transform: ClassTransformOptions;
}

/**
 * Chosen once per handler from the first parameter's declared type, so the per-message path
 * does no type inspection: raw bytes, plain JSON, or JSON bound to a class and validated.
 */
export function createPayloadBinder(payloadType: unknown, options: BinderOptions): PayloadBinder {
  if (payloadType === Uint8Array || (typeof Buffer !== 'undefined' && payloadType === Buffer)) {
    return { raw: true, fromBytes: (data) => data, fromDecoded: (data) => data };
  }
  if (PLAIN_TYPES.has(payloadType) || typeof payloadType !== 'function') {
    return { raw: false, fromBytes: decodeJson, fromDecoded: (plain) => plain };
  }
  const type = payloadType as ClassConstructor<object>;
  const { validation, transform } = options;
  const fromDecoded = (plain: unknown): unknown => {
    if (plain === null || typeof plain !== 'object' || Array.isArray(plain)) {
      throw new PayloadValidationError(
        `Payload for ${type.name} must be a JSON object, got ${plain === undefined ? 'an empty payload' : Array.isArray(plain) ? 'an array' : plain === null ? 'null' : typeof plain}`,
      );
    }
    const instance = plainToInstance(type, plain, transform);
    if (validation === false) return instance;
    return validate(instance, validation).then((errors) => {
      if (errors.length > 0) {
        throw new PayloadValidationError(`Payload is not a valid ${type.name}`, flattenErrors(errors));
      }
      return instance;
    });
  };
  return { raw: false, fromBytes: (data) => fromDecoded(decodeJson(data)), fromDecoded };
}

export function flattenErrors(errors: readonly ValidationError[], path = ''): string[] {
  const out: string[] = [];
  for (const error of errors) {
    const at = path ? `${path}.${error.property}` : error.property;
    for (const message of Object.values(error.constraints ?? {})) out.push(`${at}: ${message}`);
    if (error.children?.length) out.push(...flattenErrors(error.children, at));
  }
  return out;
}
