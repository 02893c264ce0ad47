import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { requireServerFeature } from '../options/server-features.js';

/** Where a consumer stands after a pause or resume, as the server answered. */
export interface ConsumerPauseState {
  readonly stream: string;
  readonly consumer: string;
  readonly paused: boolean;
  /** When the server resumes it by itself; undefined when it is not paused. */
  readonly pauseUntil: Date | undefined;
}

/**
 * Stops the server delivering to a consumer until `until` (nats-server 2.11+). Its apps keep
 * running; their open pulls simply get nothing until then, and messages wait in the stream.
 * A time in the past resumes it.
 */
export async function pauseConsumer(connection: JetStreamConnection, stream: string, consumer: string, until: Date): Promise<ConsumerPauseState> {
  requireServerFeature(connection, 'consumerPause', `pause consumer "${consumer}" on stream "${stream}"`);
  if (!(until instanceof Date) || Number.isNaN(until.getTime())) {
    throw new InvalidOptionsError(`pause needs a valid Date to resume at, got ${String(until)}`);
  }
  const r = await connection.jsm.consumers.pause(stream, consumer, until);
  return toState(stream, consumer, r.paused, r.pause_until);
}

/**
 * How soon a resume ends the pause. nats-server (2.15.1 measured) answers the resume request at
 * once but leaves the pulls already waiting unserved until their next heartbeat (15 s with the
 * default 30 s pull expiry), while a pause running out by its own timer serves them at once. So
 * resume moves the pause's end to just ahead instead: the handler gets the waiting messages
 * within a quarter second (consumer-pause.spec measures it).
 */
export const RESUME_WITHIN_MS = 250;

/** Lets the server deliver to a paused consumer again, within RESUME_WITHIN_MS. */
export async function resumeConsumer(connection: JetStreamConnection, stream: string, consumer: string): Promise<ConsumerPauseState> {
  requireServerFeature(connection, 'consumerPause', `resume consumer "${consumer}" on stream "${stream}"`);
  const info = await connection.jsm.consumers.info(stream, consumer);
  if (info.paused !== true) return toState(stream, consumer, false, undefined);
  const r = await connection.jsm.consumers.pause(stream, consumer, new Date(Date.now() + RESUME_WITHIN_MS));
  return toState(stream, consumer, r.paused, r.pause_until);
}

/**
 * Pauses until `until` unless the consumer is already paused at least that long: instances that
 * pause the same consumer (circuit breakers tripping on each) extend the pause, never shorten it.
 */
export async function extendConsumerPause(connection: JetStreamConnection, stream: string, consumer: string, until: Date): Promise<ConsumerPauseState> {
  const now = await consumerPauseState(connection, stream, consumer);
  if (now.paused && now.pauseUntil && now.pauseUntil.getTime() >= until.getTime()) return now;
  return pauseConsumer(connection, stream, consumer, until);
}

/** Whether a consumer is paused now, from its info. */
export async function consumerPauseState(connection: JetStreamConnection, stream: string, consumer: string): Promise<ConsumerPauseState> {
  requireServerFeature(connection, 'consumerPause', `read the pause state of consumer "${consumer}" on stream "${stream}"`);
  const info = await connection.jsm.consumers.info(stream, consumer);
  return toState(stream, consumer, info.paused === true, info.config.pause_until);
}

// A resumed consumer still reports a pause_until (the epoch, or the past time it was given).
function toState(stream: string, consumer: string, paused: boolean, until: string | undefined): ConsumerPauseState {
  return { stream, consumer, paused, pauseUntil: paused && until ? new Date(until) : undefined };
}
