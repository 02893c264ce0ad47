import type { Logger } from '@nestjs/common';
import type { JetStreamManager } from '@nats-io/jetstream';
import { releasePin } from '../groups/release-pin.js';
import type { HandlerPlan } from '../discovery/handler-plan.js';
import type { ConsumerRunner } from './consumer-runner.js';
import type { CircuitBreaker } from '../delivery/circuit-breaker.js';
import type { DatabaseHold } from '../inbox/database-hold.js';

/** A handler's consumer as it runs on this instance: a whole handler, or one partition of one. */
export interface RunningHandler {
  readonly plan: HandlerPlan;
  readonly runner: ConsumerRunner;
  readonly consumerName: string;
  readonly ephemeral: boolean;
  readonly breaker: CircuitBreaker | undefined;
  /** Inbox handlers: messages waiting for an unreachable database. */
  readonly databaseHold?: DatabaseHold;
}

/**
 * Stops the runner (in-flight calls finish, the rest is handed back), then hands a pinned
 * consumer's pin over so the next instance takes over at once instead of after the pinned TTL.
 */
export async function stopRunningHandler(handler: RunningHandler, timeoutMs: number, jsm: JetStreamManager, logger: Logger): Promise<void> {
  const stopping = handler.runner.stop(timeoutMs);
  // After the runner began stopping (it now holds what comes back): the messages the breaker
  // holds are handed back instead of waiting out the cool-down.
  handler.breaker?.stop();
  handler.databaseHold?.stop();
  await stopping;
  const pinned = handler.plan.options.exclusive;
  if (!pinned) return;
  const { plan, consumerName, runner } = handler;
  await releasePin(jsm, { stream: plan.stream, consumer: consumerName, group: pinned.group, handlerId: plan.handlerId }, runner.pinId, logger);
}
