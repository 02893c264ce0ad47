import { ForbiddenException, type ArgumentsHost } from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';
import { RpcExceptionsHandler } from '@nestjs/microservices/exceptions/rpc-exceptions-handler.js';
import { throwError, type Observable } from 'rxjs';
import { JetStreamContext } from './jetstream-context.js';

// The error each failed event call threw, until the server reads it back (eventFailure).
const failures = new WeakMap<JetStreamContext, unknown>();

// @nestjs/core's guards/constants FORBIDDEN_MESSAGE, the same on Nest 11 and 12.
const FORBIDDEN_MESSAGE = 'Forbidden resource';

// A module-local symbol: a second copy of this package wraps again and handles its own contexts.
const WRAPPED = Symbol('nestjs-jetstream:event-failure');

type Handle = (this: RpcExceptionsHandler, exception: unknown, host: ArgumentsHost, ...rest: unknown[]) => Observable<unknown>;

/**
 * Keeps an `@EventPattern` handler's error intact on its way through Nest's RPC exception layer.
 *
 * Nest wraps every microservice handler in an `RpcExceptionsHandler` whose fallback replaces any
 * error that is not an `RpcException` with `{ status: 'error', message: 'Internal server error' }`
 * (and logs it). That is right for a reply sent to a remote caller, wrong for an event: retry
 * decisions (`TerminalError`, `retryable()`), dead-letter headers, metrics and logs need the error
 * itself. Nest offers no hook between the handler and that layer (the server strategy receives
 * finished proxies), so the handler's `handle` is wrapped, for JetStream event contexts only:
 * - the error the handler threw is remembered on its context;
 * - a matching user filter still runs, and what it returns is what the pipeline returns;
 * - with no filter matching, the error is rethrown as it is (as `@OnEvent`'s pipeline does),
 *   instead of being replaced and logged a second time;
 * - an `RpcException` takes Nest's own path: its payload is what the user chose to surface
 *   (except Nest's own guard denial, settled as the ForbiddenException @OnEvent would get).
 * Requests (`@MessagePattern`) are untouched: their callers keep getting Nest's masked error.
 */
export function keepEventHandlerErrors(): void {
  const proto = RpcExceptionsHandler.prototype as unknown as { handle: Handle; [WRAPPED]?: true };
  if (proto[WRAPPED]) return;
  const nestHandle = proto.handle;
  proto.handle = function (this: RpcExceptionsHandler, exception: unknown, host: ArgumentsHost, ...rest: unknown[]) {
    const ctx: unknown = host.getArgByIndex(1);
    if (!(ctx instanceof JetStreamContext)) return nestHandle.call(this, exception, host, ...rest);
    if (exception instanceof RpcException) {
      // Nest's RPC guards deny with RpcException(FORBIDDEN_MESSAGE) where @OnEvent's raise
      // ForbiddenException: settle it as that (dead-lettered at once), filters still see Nest's.
      if (exception.getError() === FORBIDDEN_MESSAGE && !failures.has(ctx)) failures.set(ctx, new ForbiddenException(FORBIDDEN_MESSAGE));
      return nestHandle.call(this, exception, host, ...rest);
    }
    // Two handlers on one pattern share the context: the first failure is the one reported.
    if (!failures.has(ctx)) failures.set(ctx, exception);
    return (this.invokeCustomFilters(exception, host) as Observable<unknown> | null) ?? throwError(() => exception);
  };
  proto[WRAPPED] = true;
}

/**
 * The error the engine settles an event with, from what the Nest pipeline rejected with:
 * - an Error: the handler's own, or one a user filter chose to raise instead;
 * - anything else after a handler error (a filter's `super.catch()` or a plain object): the
 *   handler's error, which a filter may observe but not blur;
 * - anything else after a guard denial: a ForbiddenException;
 * - anything else from an `RpcException`: as before, an Error named `RpcError` carrying the
 *   payload's message (an `RpcException` whose payload is an Error arrives as that Error).
 */
export function eventFailure(ctx: JetStreamContext, rejected: unknown): unknown {
  if (rejected instanceof Error) return rejected;
  if (failures.has(ctx)) return failures.get(ctx);
  if (rejected && typeof rejected === 'object' && 'message' in rejected) {
    const error = new Error(String((rejected as { message: unknown }).message));
    error.name = 'RpcError';
    return error;
  }
  return rejected;
}
