import type { Logger } from '@nestjs/common';
import type { ResolvedCircuitBreakerOptions } from '../decorators/on-event-options.js';
import { describeCause } from '../errors/jetstream-errors.js';
import type { CircuitBreakerState } from '../observability/instrumentation.js';

export type { CircuitBreakerState };

export interface CircuitBreakerHooks {
  /**
   * Pauses the handler's consumer on the server until `until`. The breaker holds its messages
   * whether or not this succeeds; a failure is only logged.
   */
  pause(until: Date): Promise<void>;
  /** Every change of state, for the metrics; `opened` is true on each transition to `open`. */
  changed?(state: CircuitBreakerState, opened: boolean): void;
}

/**
 * One handler's circuit breaker, in this instance. Consecutive failures the failure policy would
 * retry (or give up on as exhausted) open it; the failure that opens it, and every one while it
 * is open, is held: the dispatcher keeps the message (the runner's heartbeat keeps its ack wait
 * alive) and runs it again once admitted, so the server's delivery count, which is the retry
 * budget, does not move. The server-side pause stops new deliveries to every instance; the
 * breaker never resumes the consumer itself (the pause runs out on the server's timer), so two
 * instances can only ever extend each other's pause, never undo it.
 */
export class CircuitBreaker {
  private current: CircuitBreakerState = 'closed';
  private consecutive = 0;
  /** Half-open: a trial message was admitted and has not ended yet. */
  private trialRunning = false;
  /** Messages waiting to run, oldest first: the first one is the next trial. */
  private readonly waiting: Array<(admitted: boolean) => void> = [];
  /** Messages the runner took from the client while open; released when it is no longer open. */
  private readonly notOpenWaiters: Array<(go: boolean) => void> = [];
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private openedCount = 0;

  constructor(
    private readonly handlerId: string,
    private readonly options: ResolvedCircuitBreakerOptions,
    private readonly hooks: CircuitBreakerHooks,
    private readonly logger: Logger,
  ) {}

  get state(): CircuitBreakerState {
    return this.current;
  }

  /** How many times it opened since the app started. */
  get opened(): number {
    return this.openedCount;
  }

  /**
   * Before a handler call: undefined when it may run now (closed, or the trial of a half-open
   * breaker). Otherwise a promise that resolves true when it may run, or false when the app is
   * stopping and the message must be handed back.
   */
  admission(): Promise<boolean> | undefined {
    if (this.current === 'closed') return undefined;
    if (this.stopped) return Promise.resolve(false);
    if (this.current === 'half-open' && !this.trialRunning) {
      this.trialRunning = true;
      return undefined;
    }
    return new Promise<boolean>((resolve) => this.waiting.push(resolve));
  }

  /**
   * Resolves once the breaker is not open (true), or when stopping (false); undefined when it is
   * not open now. The runner parks messages it pulled here instead of queueing them behind busy
   * concurrency slots, where nothing would keep their ack wait alive.
   */
  untilNotOpen(): Promise<boolean> | undefined {
    if (this.current !== 'open') return undefined;
    if (this.stopped) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => this.notOpenWaiters.push(resolve));
  }

  /**
   * A failure the policy would retry or give up on as exhausted (not an invalid payload or a
   * terminal error). `hold`: keep the message and run it again once admitted, without counting
   * the attempt. `trial-failed`: the same, but the failed trial counts as an attempt of its
   * message, so one message that always fails cannot keep the breaker open for ever.
   * Undefined: the policy's decision stands.
   */
  failed(): 'hold' | 'trial-failed' | undefined {
    switch (this.current) {
      case 'closed':
        if (++this.consecutive < this.options.failures) return undefined;
        this.open(`${this.consecutive} consecutive failures`);
        return 'hold';
      case 'half-open':
        this.open('the trial failed');
        return 'trial-failed';
      default:
        return 'hold';
    }
  }

  /** A handler call resolved: closes a half-open breaker, resets the count of a closed one. */
  succeeded(): void {
    if (this.current === 'closed') this.consecutive = 0;
    else if (this.current === 'half-open') this.close();
    // Open: a call that started before it opened says nothing about the dependency now.
  }

  /**
   * An admitted call ended neither way (a duplicate, an invalid payload, a terminal error): a
   * half-open breaker gives the trial to the next waiting message.
   */
  ended(): void {
    if (this.current !== 'half-open' || !this.trialRunning) return;
    this.trialRunning = false;
    this.admitTrial();
  }

  /** Releases every held message to be handed back (the app is stopping); holds no more. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const resolve of this.waiting.splice(0)) resolve(false);
    for (const resolve of this.notOpenWaiters.splice(0)) resolve(false);
  }

  private open(why: string): void {
    this.current = 'open';
    this.consecutive = 0;
    this.trialRunning = false;
    this.openedCount++;
    this.hooks.changed?.('open', true);
    const until = new Date(Date.now() + this.options.coolDownMs);
    this.logger.warn(`${this.handlerId}: circuit breaker opened (${why}); consumer paused until ${until.toISOString()}, failed messages held without using attempts`);
    this.hooks.pause(until).catch((err: unknown) => {
      this.logger.error(`${this.handlerId}: circuit breaker could not pause the consumer on the server (${describeCause(err)}); holding this instance's messages anyway`);
    });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.halfOpen(), this.options.coolDownMs);
    this.timer.unref();
  }

  private halfOpen(): void {
    if (this.stopped) return;
    this.current = 'half-open';
    this.hooks.changed?.('half-open', false);
    this.logger.log(`${this.handlerId}: circuit breaker half-open; one message runs as a trial`);
    this.admitTrial();
    for (const resolve of this.notOpenWaiters.splice(0)) resolve(true);
  }

  private admitTrial(): void {
    const next = this.waiting.shift();
    if (!next) return;
    this.trialRunning = true;
    next(true);
  }

  private close(): void {
    this.current = 'closed';
    this.consecutive = 0;
    this.trialRunning = false;
    this.hooks.changed?.('closed', false);
    this.logger.log(`${this.handlerId}: circuit breaker closed; the trial succeeded, ${this.waiting.length} held message(s) run again`);
    for (const resolve of this.waiting.splice(0)) resolve(true);
    for (const resolve of this.notOpenWaiters.splice(0)) resolve(true);
  }
}
