import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { catchError, from, map, throwError, type Observable } from 'rxjs';
import { EventContext } from '../../context/event-context.js';
import { BreakerHeld, DeadLettered, DeadLetterRequired, RetryScheduled } from '../dispositions.js';
import type { DeadLetterReason } from '../../dead-letters/dead-letter-target.js';
import { decideFailure, handlerRuntime } from '../handler-runtime.js';
import { isJetStreamContext } from '../jetstream-context-type.js';

/**
 * Parks messages that will not be retried in the dead-letter stream: original bytes and headers
 * plus the failure's details. Only once that publish is acknowledged does the message count as
 * dead-lettered (and get terminated); a failed publish schedules a retry, so nothing is lost.
 */
@Injectable()
export class JetStreamDeadLetterInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (!isJetStreamContext(context)) return next.handle();
    const ctx = context.switchToRpc().getContext<EventContext>();
    // A batch handler's context: its messages are settled one by one after the call.
    if (!(ctx instanceof EventContext)) return next.handle();
    return next.handle().pipe(
      catchError((error: unknown) => {
        // A timed-out call's late failure: the dispatcher already settled this delivery, and a
        // redelivery may be running, so parking a copy now could dead-letter a handled message.
        if (error instanceof RetryScheduled || error instanceof BreakerHeld || EventContext.isAbandoned(ctx)) return throwError(() => error);
        const runtime = handlerRuntime(ctx);
        const { policy, sink } = runtime;
        let failure = error;
        let reason: DeadLetterReason;
        if (error instanceof DeadLetterRequired) {
          failure = error.failure;
          reason = error.reason;
        } else {
          // Not classified yet (the retry interceptor is not in front of this one): decide here,
          // so the order of the two never changes the outcome.
          const decision = decideFailure(runtime, error, ctx.attempt);
          if (decision.action === 'hold') return throwError(() => new BreakerHeld(error, decision.counted));
          if (decision.action === 'retry') return throwError(() => new RetryScheduled(error, decision.delayMs));
          reason = decision.reason;
        }
        if (!sink) return throwError(() => new DeadLetterRequired(failure, reason));
        return from(sink.publish(ctx.message, ctx, failure, reason)).pipe(
          map((seq) => new DeadLettered(failure, reason, seq)),
          catchError((publishError: unknown) =>
            throwError(() => new RetryScheduled(failure, policy.deadLetterRetryDelay(ctx.attempt), publishError)),
          ),
        );
      }),
    );
  }
}
