import { MetadataScanner } from '@nestjs/core';
import type { OnEventOptions } from '../decorators/on-event-options.js';
import { payloadParameterType } from '../decorators/event-params.decorator.js';
import { getOnEventMetadata } from '../decorators/on-event.decorator.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { assertFilterSubject } from '../options/subject-validation.js';

/** One `@OnEvent` of a class as declared: before its options are resolved or its stream known. */
export interface DeclaredOnEvent {
  /** `ClassName.method`, used in every message about this handler. */
  readonly handlerId: string;
  readonly methodName: string;
  readonly subject: string;
  readonly options: OnEventOptions;
  /** Declared type of the payload parameter (the first, or the one marked `@EventPayload()`). */
  readonly payloadType: unknown;
}

const scanner = new MetadataScanner();

/**
 * The one reader of `@OnEvent` metadata (as `@nestjs/bullmq`'s metadata accessor is for its
 * decorators): runtime discovery and the AsyncAPI inventory both list a class's handlers here,
 * with each subject checked as a filter, so they cannot disagree on what a class declares.
 */
export function readOnEventHandlers(prototype: object, className: string): DeclaredOnEvent[] {
  const found: DeclaredOnEvent[] = [];
  for (const methodName of scanner.getAllMethodNames(prototype)) {
    const metadata = getOnEventMetadata((prototype as Record<string, unknown>)[methodName]);
    if (!metadata?.length) continue;
    const handlerId = `${className}.${methodName}`;
    const payloadType = payloadParameterType(prototype, methodName);
    for (const { subject, options } of metadata) {
      try {
        assertFilterSubject(subject);
      } catch (err) {
        throw new InvalidOptionsError(`@OnEvent on ${handlerId}: ${(err as Error).message}`);
      }
      found.push({ handlerId, methodName, subject, options, payloadType });
    }
  }
  return found;
}
