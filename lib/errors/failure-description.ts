import { types } from 'node:util';
import { HttpException } from '@nestjs/common';

/**
 * An Error of any realm: a socket error is made in Node's own, which under a VM context (Jest's
 * ESM mode, a user's tests) is not `instanceof` the `Error` this module sees, and was reported
 * as "non-Error thrown" with its fields as JSON.
 */
export function isError(error: unknown): error is Error {
  return error instanceof Error || types.isNativeError(error);
}

/** The name a failure is reported under (dead-letter header, logs). */
export function failureName(error: unknown): string {
  if (isError(error)) return error.name || 'Error';
  return error === null ? 'null' : typeof error;
}

/**
 * What went wrong, for the dead-letter header, the logs and the CLI. A Nest `HttpException`
 * from a pipe keeps its detail in the response, not in `message`: a `ValidationPipe` rejection
 * reads "Bad Request Exception" while its response lists every field ("id must be a string").
 * Those field messages are what a reader of a dead letter needs, so they come first.
 */
export function failureMessage(error: unknown): string {
  if (error instanceof HttpException) {
    const detail = responseMessage(error.getResponse());
    if (detail) return detail;
  }
  if (isError(error)) return error.message;
  try {
    return typeof error === 'string' ? error : JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}

/** `Name: message`, or what a non-Error throw held. */
export function describeFailure(error: unknown): string {
  if (isError(error)) return `${failureName(error)}: ${failureMessage(error)}`;
  return `non-Error thrown: ${failureMessage(error)}`;
}

function responseMessage(response: string | object): string | undefined {
  if (typeof response === 'string') return response || undefined;
  const message = (response as { message?: unknown }).message;
  if (typeof message === 'string') return message || undefined;
  if (Array.isArray(message) && message.length > 0) return message.map(String).join('; ');
  return undefined;
}
