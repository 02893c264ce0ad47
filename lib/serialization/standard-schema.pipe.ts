import type { PipeTransform } from '@nestjs/common';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { PayloadValidationError } from '../errors/jetstream-errors.js';

/**
 * The last pipe before a handler with `{ schema }`: validates the decoded payload with any
 * Standard Schema and hands on the schema's output (transforms and defaults applied). Issues
 * become a `PayloadValidationError` worded like class-validator's, `path: message` each, so a
 * dead letter reads the same whichever library validated.
 */
export class StandardSchemaPipe implements PipeTransform {
  private readonly label: string;

  constructor(private readonly schema: StandardSchemaV1) {
    this.label = `${schema['~standard'].vendor} schema`;
  }

  transform(value: unknown): unknown {
    let result: StandardSchemaV1.Result<unknown> | Promise<StandardSchemaV1.Result<unknown>>;
    try {
      result = this.schema['~standard'].validate(value);
    } catch (err) {
      throw this.crashed(err);
    }
    return isPromise(result) ? result.then((r) => this.outcome(r), (err: unknown) => Promise.reject(this.crashed(err))) : this.outcome(result);
  }

  private outcome(result: StandardSchemaV1.Result<unknown>): unknown {
    if (!result.issues) return result.value;
    throw new PayloadValidationError(`Payload does not match the ${this.label}`, result.issues.map(describeIssue));
  }

  // Only a stack overflow (a payload nested thousands deep) is the payload's fault; anything
  // else a schema throws (an async refinement whose lookup is down) stays retryable.
  private crashed(err: unknown): unknown {
    if (err instanceof RangeError) return new PayloadValidationError(`Payload cannot be validated by the ${this.label} (nested too deeply: ${err.message})`, [], { cause: err });
    return err;
  }
}

export function describeIssue(issue: StandardSchemaV1.Issue): string {
  const path = (issue.path ?? []).map((segment) => String(typeof segment === 'object' ? segment.key : segment)).join('.');
  return path ? `${path}: ${issue.message}` : issue.message;
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown }).then === 'function';
}
