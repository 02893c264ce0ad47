import type { JsMsg } from '@nats-io/jetstream';
import type { EventContext } from '../context/event-context.js';
import type { DeadLetterReason } from '../dead-letters/dead-letter-target.js';
import { describeCause } from '../errors/jetstream-errors.js';
import { DeadLettered } from './dispositions.js';
import type { HandlerRuntime } from './handler-runtime.js';
import type { Settlement } from './settlement.js';

/** A message parked for good: `deadLetterSeq` is its copy's sequence, undefined without a dead-letter stream. */
export interface Parked {
  readonly deadLetterSeq: number | undefined;
}

/**
 * Takes a message out of the flow for good, the one way both dispatchers (per message and
 * batch) do it: its copy published to the dead-letter stream, then terminated; with no
 * dead-letter stream, terminated with the reason. A copy that fails to publish hands the message
 * back for a later try instead (undefined), so it is never terminated without its copy.
 */
export async function parkForGood(
  runtime: HandlerRuntime,
  settlement: Settlement,
  msg: JsMsg,
  ctx: EventContext,
  error: unknown,
  reason: DeadLetterReason,
): Promise<Parked | undefined> {
  const sink = runtime.sink;
  if (!sink) {
    settlement.termWithoutDeadLetter(msg, ctx, error, reason);
    return { deadLetterSeq: undefined };
  }
  let seq: number;
  try {
    seq = await sink.publish(msg, ctx, error, reason);
  } catch (publishError) {
    settlement.nakWithDelay(msg, ctx, error, runtime.policy.deadLetterRetryDelay(ctx.attempt), `dead-letter publish failed: ${describeCause(publishError)}`);
    return undefined;
  }
  settlement.termDeadLettered(msg, ctx, new DeadLettered(error, reason, seq));
  return { deadLetterSeq: seq };
}
