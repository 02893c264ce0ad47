import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { catchError, throwError, type Observable } from 'rxjs';
import { EventContext } from '../../context/event-context.js';
import { BreakerHeld, DeadLetterRequired, RetryScheduled } from '../dispositions.js';
import { decideFailure, handlerRuntime } from '../handler-runtime.js';
import { isJetStreamContext } from '../jetstream-context-type.js';

/**
 * Turns a handler failure into a decision: retry after a backoff delay (the message is nak'ed
 * with that delay, never immediately), or give up and dead-letter it. Runs inside the
 * dead-letter interceptor by default; list it yourself with `@UseInterceptors` to move it.
 */
@Injectable()
export class JetStreamRetryInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (!isJetStreamContext(context)) return next.handle();
    const ctx = context.switchToRpc().getContext<EventContext>();
    // A batch handler's context: its messages are settled one by one after the call.
    if (!(ctx instanceof EventContext)) return next.handle();
    return next.handle().pipe(
      catchError((error: unknown) => {
        if (error instanceof RetryScheduled || error instanceof DeadLetterRequired || error instanceof BreakerHeld) return throwError(() => error);
        const decision = decideFailure(handlerRuntime(ctx), error, ctx.attempt);
        return throwError(() =>
          decision.action === 'hold'
            ? new BreakerHeld(error, decision.counted)
            : decision.action === 'retry'
              ? new RetryScheduled(error, decision.delayMs)
              : new DeadLetterRequired(error, decision.reason),
        );
      }),
    );
  }
}
