import type { Logger } from '@nestjs/common';
import type { JetStreamManager } from '@nats-io/jetstream';
import { describeCause } from '../errors/jetstream-errors.js';


/**
 * A stopping pinned instance hands the pin over at once instead of leaving the standbys to wait
 * out the pinned TTL. Called after its messages are settled or handed back, so the next instance
 * gets them first and in order. Only while the server still names this instance: unpinning
 * another one would move the pin away from an instance that is working.
 */
export async function releasePin(
  jsm: JetStreamManager,
  target: { readonly stream: string; readonly consumer: string; readonly group: string; readonly handlerId: string },
  pinId: string | undefined,
  logger: Logger,
): Promise<boolean> {
  if (!pinId) return false;
  try {
    // Safe with messages still unsettled on the server (a nak not processed yet): the consumer
    // holds one unacknowledged message at most, so nothing later is delivered before it.
    const info = await jsm.consumers.info(target.stream, target.consumer);
    const state = (info as { priority_groups?: Array<{ group: string; pinned_client_id?: string }> }).priority_groups?.find((g) => g.group === target.group);
    if (state?.pinned_client_id !== pinId) return false;
    await jsm.consumers.unpin(target.stream, target.consumer, target.group);
    logger.log(`${target.handlerId}: released the pin of "${target.consumer}"; a standby instance takes over now`);
    return true;
  } catch (err) {
    // The pin then moves when its TTL runs out, as after a crash.
    logger.warn(`${target.handlerId}: could not release the pin of "${target.consumer}" (${describeCause(err)}); a standby takes over after the pinned TTL`);
    return false;
  }
}
