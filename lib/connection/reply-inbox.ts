import {
  backoff,
  createInbox,
  errors as natsErrors,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';

/** The request got no reply in time; it may or may not have reached the server. */
export class ReplyTimeoutError extends Error {
  constructor(subject: string, timeoutMs: number) {
    super(`no reply on ${subject} within ${timeoutMs} ms`);
    this.name = 'ReplyTimeoutError';
  }
}

/** Nothing listens on the subject (503): for a stream subject, the stream has no leader or is gone. */
export class NoReplierError extends Error {
  constructor(subject: string) {
    super(`no responders on ${subject}`);
    this.name = 'NoReplierError';
  }
}

/** The inbox, or its connection, closed before the reply came; the request may have reached the server. */
export class ReplyInboxClosedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplyInboxClosedError';
  }
}

/** What a failed call was, for the error its caller sees. */
export interface FailedCall {
  readonly subject: string;
  readonly timeoutMs: number;
  /** Sends made, resends included. */
  readonly attempts: number;
  readonly bytes: number;
}

/**
 * How one kind of call treats its reply and its failures: one object per kind, shared by every
 * call of that kind, so a call allocates nothing for it.
 */
export interface ReplyHandling<T> {
  /** Turns the reply into the caller's result; what it throws rejects the call. */
  decode(msg: Msg): T;
  /** The error the caller sees for a failure (the failure path only). */
  explain?(err: Error, call: FailedCall): Error | Promise<Error>;
}

interface Outgoing {
  readonly token: string;
  readonly subject: string;
  readonly data: Uint8Array | string;
  readonly headers?: MsgHdrs;
}

interface Waiter {
  readonly subject: string;
  readonly data: Uint8Array | string;
  readonly headers: MsgHdrs | undefined;
  readonly timeoutMs: number;
  deadline: number;
  /** Sends made so far. */
  sent: number;
  readonly attempts: number;
  readonly handling: ReplyHandling<unknown> | undefined;
  readonly resolve: (value: never) => void;
  readonly reject: (err: Error) => void;
}

/** The client's resend pauses (its `backoff()` policy), so resends behave as the client's do. */
const RESEND_BACKOFF = backoff();

/**
 * Request-reply for the hot paths (idempotency records, confirmed acks, JetStream publishes):
 * one wildcard subscription, one map entry and one promise per request, and one sweep timer for
 * all deadlines. The client's own `request()`/`ackAck()` build a request object, a timer, a
 * promise race and, when the request finishes, an error with a stack, per call: profiles showed
 * that costing about as much as the server's work on the record itself, and 17-19% of the CPU of
 * pipelined publishing.
 */
export class ReplyInbox {
  private readonly prefix: string;
  private readonly subscription: Subscription;
  private readonly waiters = new Map<string, Waiter>();
  /** While every request used the inbox's timeout, insertion order is deadline order. */
  private uniform = true;
  private sweep: NodeJS.Timeout;
  private sweepEveryMs: number;
  private counter = 0;
  private outgoing: Outgoing[] = [];
  private closed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
  ) {
    // A user restricted to a custom inbox prefix (permissions) must get replies there too.
    this.prefix = createInbox((nc as unknown as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
    const start = this.prefix.length + 1;
    this.subscription = nc.subscribe(`${this.prefix}.*`, {
      callback: (err, msg) => {
        if (err) return this.failAll(() => err);
        const token = msg.subject.slice(start);
        const waiter = this.waiters.get(token);
        if (!waiter) return; // Already timed out: the late reply has nobody to tell.
        this.waiters.delete(token);
        if (msg.headers?.code === 503) this.retryOrFail(token, waiter, new NoReplierError(waiter.subject));
        else this.settle(waiter, msg);
      },
    });
    void this.subscription.closed.then(() => {
      this.closed = true;
      clearInterval(this.sweep);
      this.failAll((subject) => new ReplyInboxClosedError(`connection closed before ${subject} replied`));
    });
    this.sweepEveryMs = sweepInterval(timeoutMs);
    this.sweep = this.startSweep();
    this.watchDenials().catch(() => undefined);
  }

  /**
   * Sends at the end of this event-loop turn with every other request of the turn: the client
   * writes to the socket once per microtask checkpoint, and replies arrive spread over many
   * turns, so sending each at once cost one socket write per request (a third of the CPU in
   * profiles of exactly-once delivery).
   */
  request(subject: string, data: Uint8Array | string, headers?: MsgHdrs): Promise<Msg> {
    const token = (this.counter++).toString(36);
    return new Promise<Msg>((resolve, reject) => {
      this.waiters.set(token, this.waiter(subject, data, headers, this.timeoutMs, 1, undefined, resolve, reject));
      if (this.outgoing.push({ token, subject, data, headers }) === 1) setImmediate(this.send);
    });
  }

  /**
   * Sends now, so calls leave in call order (a publisher's order on the stream), and resolves
   * with `handling.decode` of the reply. On a timeout or a 503 it resends the same message, up to
   * `attempts` sends, after the client's backoff: only for requests that are safe to repeat (a
   * publish with a msg-id).
   */
  call<T>(
    subject: string,
    data: Uint8Array,
    headers: MsgHdrs | undefined,
    timeoutMs: number,
    attempts: number,
    handling: ReplyHandling<T>,
  ): Promise<T> {
    const token = (this.counter++).toString(36);
    if (timeoutMs !== this.timeoutMs) this.mixedTimeout(timeoutMs);
    return new Promise<T>((resolve, reject) => {
      const waiter = this.waiter(subject, data, headers, timeoutMs, attempts, handling as ReplyHandling<unknown>, resolve, reject);
      this.waiters.set(token, waiter);
      this.sendNow(token, waiter);
    });
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweep);
    if (!this.subscription.isClosed()) this.subscription.unsubscribe();
    this.failAll((subject) => new ReplyInboxClosedError(`closed before ${subject} replied`));
  }

  private waiter(
    subject: string,
    data: Uint8Array | string,
    headers: MsgHdrs | undefined,
    timeoutMs: number,
    attempts: number,
    handling: ReplyHandling<unknown> | undefined,
    resolve: (value: never) => void,
    reject: (err: Error) => void,
  ): Waiter {
    return { subject, data, headers, timeoutMs, deadline: Date.now() + timeoutMs, sent: 1, attempts, handling, resolve, reject };
  }

  private readonly send = (): void => {
    const outgoing = this.outgoing;
    this.outgoing = [];
    for (const { token, subject, data, headers } of outgoing) {
      try {
        this.nc.publish(subject, data, { reply: `${this.prefix}.${token}`, headers });
      } catch (err) {
        const waiter = this.waiters.get(token);
        this.waiters.delete(token);
        if (waiter) this.fail(waiter, err as Error);
      }
    }
  };

  private sendNow(token: string, waiter: Waiter): void {
    try {
      this.nc.publish(waiter.subject, waiter.data, { reply: `${this.prefix}.${token}`, headers: waiter.headers });
    } catch (err) {
      // Closed, draining or oversized: the client refused before sending, so never a resend.
      this.waiters.delete(token);
      this.fail(waiter, err as Error);
    }
  }

  private settle(waiter: Waiter, msg: Msg): void {
    if (!waiter.handling) return waiter.resolve(msg as never);
    let result: unknown;
    try {
      result = waiter.handling.decode(msg);
    } catch (err) {
      return this.fail(waiter, err as Error);
    }
    waiter.resolve(result as never);
  }

  /** A timeout or a 503: resend after the client's pause while sends remain, else fail. */
  private retryOrFail(token: string, waiter: Waiter, err: Error): void {
    if (waiter.sent >= waiter.attempts || this.closed) return this.fail(waiter, err);
    const pause = RESEND_BACKOFF.backoff(waiter.sent - 1);
    setTimeout(() => {
      if (this.closed) return this.fail(waiter, new ReplyInboxClosedError(`closed before ${waiter.subject} replied`));
      waiter.sent++;
      waiter.deadline = Date.now() + waiter.timeoutMs;
      this.waiters.set(token, waiter);
      this.sendNow(token, waiter);
    }, pause);
  }

  private fail(waiter: Waiter, err: Error): void {
    const handling = waiter.handling;
    if (!handling?.explain) return waiter.reject(err);
    const call: FailedCall = { subject: waiter.subject, timeoutMs: waiter.timeoutMs, attempts: waiter.sent, bytes: waiter.data.length };
    new Promise<Error>((resolve) => resolve(handling.explain!(err, call))).then(waiter.reject, waiter.reject);
  }

  /** A timeout other than the inbox's: deadlines no longer follow insertion order, and may be shorter. */
  private mixedTimeout(timeoutMs: number): void {
    this.uniform = false;
    const every = sweepInterval(timeoutMs);
    if (every >= this.sweepEveryMs || this.closed) return;
    clearInterval(this.sweep);
    this.sweepEveryMs = every;
    this.sweep = this.startSweep();
  }

  private startSweep(): NodeJS.Timeout {
    const sweep = setInterval(() => this.expire(), this.sweepEveryMs);
    sweep.unref();
    return sweep;
  }

  private expire(): void {
    const now = Date.now();
    for (const [token, waiter] of this.waiters) {
      if (waiter.deadline > now) {
        if (this.uniform) return;
        continue;
      }
      this.waiters.delete(token);
      this.retryOrFail(token, waiter, new ReplyTimeoutError(waiter.subject, waiter.timeoutMs));
    }
  }

  /**
   * The server answers a publish the user may not make with an -ERR naming the subject, which the
   * client reports only as a status: fail the oldest request on that subject at once (as the
   * client's own request does) instead of letting it time out.
   */
  private async watchDenials(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type !== 'error' || this.waiters.size === 0) continue;
      const error = status.error;
      if (!(error instanceof natsErrors.PermissionViolationError) || error.operation !== 'publish') continue;
      for (const [token, waiter] of this.waiters) {
        if (waiter.subject !== error.subject) continue;
        this.waiters.delete(token);
        this.fail(waiter, error);
        break;
      }
    }
  }

  private failAll(error: (subject: string) => Error): void {
    const waiters = [...this.waiters.values()];
    this.waiters.clear();
    for (const waiter of waiters) this.fail(waiter, error(waiter.subject));
  }
}

/** Deadlines are checked this often: a timeout fires at most an eighth (or 250 ms) late. */
function sweepInterval(timeoutMs: number): number {
  return Math.min(250, Math.max(20, Math.floor(timeoutMs / 8)));
}
