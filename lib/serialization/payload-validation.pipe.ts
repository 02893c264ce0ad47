import type { ArgumentMetadata, PipeTransform } from '@nestjs/common';
import { plainToInstance, type ClassConstructor, type ClassTransformOptions } from 'class-transformer';
import { validate, type ValidationError, type ValidatorOptions } from 'class-validator';
import { PayloadValidationError } from '../errors/jetstream-errors.js';

// Declared types that say nothing about shape: the payload is passed on as parsed JSON.
const PLAIN_TYPES = new Set<unknown>([undefined, Object, Number, String, Boolean, Array, Promise, Function, Symbol, BigInt, Uint8Array, Buffer]);

/**
 * The last pipe before a handler: turns the parsed JSON into an instance of the payload's
 * declared class and validates it. A failure is a `PayloadValidationError`, which is terminal:
 * retrying cannot fix a payload. Runs after the user's own pipes, so a global `ValidationPipe`
 * can transform first; an instance of the class is then only validated.
 */
export class JetStreamPayloadPipe implements PipeTransform {
  constructor(
    private readonly validation: ValidatorOptions | false,
    private readonly transformOptions: ClassTransformOptions,
  ) {}

  static appliesTo(payloadType: unknown): boolean {
    return typeof payloadType === 'function' && !PLAIN_TYPES.has(payloadType);
  }

  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    const type = metadata.metatype as ClassConstructor<object> | undefined;
    if (!JetStreamPayloadPipe.appliesTo(type)) return value;
    const target = type!;
    let instance: object;
    if (value instanceof target) {
      instance = value;
    } else {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new PayloadValidationError(
          `Payload for ${target.name} must be a JSON object, got ${value === undefined ? 'an empty payload' : Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`,
        );
      }
      try {
        instance = plainToInstance(target, value, this.transformOptions);
      } catch (err) {
        // class-transformer recurses into every nested object: a hostile payload (JSON nested
        // thousands deep) overflows the stack. Retrying the same bytes cannot help.
        throw new PayloadValidationError(`Payload cannot be turned into a ${target.name} (${bindingFailure(err)})`, [], { cause: err });
      }
    }
    if (this.validation === false) return instance;
    return validate(instance, this.validation).then(
      (errors) => {
        if (errors.length > 0) throw new PayloadValidationError(`Payload is not a valid ${target.name}`, flattenErrors(errors));
        return instance;
      },
      (err: unknown) => {
        // Only the stack overflow is the payload's fault; a custom validator failing (a lookup
        // that is down) stays an ordinary, retryable error.
        if (err instanceof RangeError) {
          throw new PayloadValidationError(`Payload cannot be validated as a ${target.name} (${bindingFailure(err)})`, [], { cause: err });
        }
        throw err;
      },
    );
  }
}

function bindingFailure(err: unknown): string {
  if (err instanceof RangeError) return `nested too deeply: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
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
