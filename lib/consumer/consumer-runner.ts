import type { Logger } from '@nestjs/common';
import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { NOT_DECODED, type Dispatcher } from '../delivery/dispatcher.js';
import type { Settlement } from '../delivery/settlement.js';
import type { CircuitBreaker } from '../delivery/circuit-breaker.js';
import { describeCause } from '../errors/jetstream-errors.js';
import { BatchAssembler, type BatchFeed } from './batch-assembler.js';
import { ConcurrencyGate } from './concurrency-gate.js';
import { OrderingLanes, type LaneItem } from './ordering-lanes.js';

// How long a stopping runner waits for its open pull requests to be answered: with a backlog
// they are within milliseconds; on an idle stream they would stay open until they expire.
const PULLS_ANSWERED_MAX_MS = 500;

export interface RunnerOptions {
  readonly handlerId: string;
  readonly concurrency: number;
  readonly prefetch: number;
  /** The consumer's ack wait: long handler calls are kept alive with `working()` well within it. */
  readonly ackWaitMs: number;
  /** Ordering key of a message and its decoded payload (parsed once, reused by the handler). */
  readonly orderKey?: (msg: JsMsg) => { key: string; decoded: unknown };
  /** A batch handler: messages go to it in batches, each batch taking one concurrency slot. */
  readonly batch?: BatchFeed;
  /** Pulls as a member of this priority group (a pinned consumer), each pull expiring after `expiresMs`. */
  readonly group?: { readonly name: string; readonly expiresMs: number };
  /**
   * Slots shared with other runners (a partitioned group's partitions on this instance): a
   * message's handler call also waits for one, so the instance runs at most the pool's size
   * of calls at once however many partitions it owns.
   */
  readonly pool?: ConcurrencyGate;
  /** The handler's circuit breaker: while it is open, messages pulled wait here, kept alive. */
  readonly breaker?: CircuitBreaker;
}

/**
 * One pull consumer feeding one handler: keeps up to `prefetch` messages buffered and at most
 * `concurrency` handler calls in flight, and on stop gives back what it has not started.
 */
export class ConsumerRunner {
  private messages?: ConsumerMessages;
  private loop?: Promise<void>;
  private stopping = false;
  /** While stopping with the inbox still open: messages reached are held, then handed back. */
  private holding = false;
  private readonly held: JsMsg[] = [];
  private inboxClosed = false;
  /** True while stop() ends the client's iteration: the one queued function still run then. */
  private endIteration = false;
  private readonly gate: ConcurrencyGate;
  /** Messages whose handler call is running, with when it started. */
  private readonly inFlight = new Map<JsMsg, number>();
  private heartbeat?: NodeJS.Timeout;
  private idle?: () => void;
  private handled = 0;
  private readonly lanes?: OrderingLanes;
  private laneSpace?: () => void;
  private loopEnded = false;
  /** The server's pin id while this runner is its group's pinned client. */
  private pin?: string;
  private readonly batches?: BatchAssembler;
  /** A concurrency slot is held for the batch being gathered. */
  private batchSlot = false;

  constructor(
    private readonly consumer: Consumer,
    private readonly dispatcher: Dispatcher,
    private readonly settlement: Settlement,
    private readonly options: RunnerOptions,
    private readonly logger: Logger,
  ) {
    this.gate = new ConcurrencyGate(options.concurrency);
    if (options.orderKey) this.lanes = new OrderingLanes();
    if (options.batch) this.batches = new BatchAssembler(options.batch, (msgs) => this.startBatch(options.batch!, msgs));
  }

  /** Pulling messages: started, not stopping, and its loop has not ended on an error. */
  get active(): boolean {
    return this.loop !== undefined && !this.stopping && !this.loopEnded;
  }

  /** Messages whose handler call has finished, successfully or not. */
  get processed(): number {
    return this.handled;
  }

  /** The pin id the server gave this runner, while it is the pinned client of its group. */
  get pinId(): string | undefined {
    return this.pin;
  }

  async start(): Promise<void> {
    const group = this.options.group;
    this.messages = await this.consumer.consume(
      group ? { max_messages: this.options.prefetch, group: group.name, expires: group.expiresMs } : { max_messages: this.options.prefetch },
    );
    this.startHeartbeat();
    this.watchStatus(this.messages).catch(() => undefined);
    this.loop = this.run(this.messages);
  }

  /**
   * Stops pulling, lets in-flight handlers finish for up to `timeoutMs` (they settle as usual),
   * then hands back whatever is still running so another instance can take it.
   */
  async stop(timeoutMs: number): Promise<void> {
    if (this.stopping) return this.loop;
    this.stopping = true;
    // Messages reached from now on are held, not nak'ed, while the inbox is open: a nak'ed message
    // would come straight back to a pull request of ours that is still open.
    this.holding = true;
    this.stopRefills();
    this.gate.open();
    for (const item of this.lanes?.drain() ?? []) this.handBack(item.msg);
    for (const msg of this.batches?.takeUnstarted() ?? []) this.handBack(msg);
    if (this.batchSlot) {
      this.batchSlot = false;
      this.gate.release();
    }
    this.laneSpace?.();
    await this.untilPullsAnswered();
    await this.drainInbox();
    this.inboxClosed = true;
    this.endIteration = true;
    this.messages?.stop();
    this.endIteration = false;
    // The server has no interest in the inbox any more: what is handed back goes to others.
    this.holding = false;
    for (const msg of this.held.splice(0)) this.settlement.nakImmediately(msg);
    const finished = await this.waitIdle(timeoutMs);
    if (!finished) {
      this.logger.warn(
        `${this.options.handlerId}: ${this.inFlight.size} handler call(s) still running after ${timeoutMs} ms; handing their messages back for redelivery`,
      );
      for (const msg of this.inFlight.keys()) this.settlement.nakImmediately(msg);
    }
    // Acks of the last handler calls are still queued for the end of this turn; the connection
    // may close right after stop() resolves.
    this.settlement.flushAcks();
    clearInterval(this.heartbeat);
    await this.loop;
  }

  private async run(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const msg of messages) {
        if (this.stopping) {
          this.handBack(msg);
          continue;
        }
        if (this.lanes) {
          await this.schedule(msg);
          continue;
        }
        if (this.batches) {
          await this.gather(this.batches, msg);
          continue;
        }
        const notOpen = this.options.breaker?.untilNotOpen();
        if (notOpen) {
          void this.parkWhileOpen(msg, notOpen);
          continue;
        }
        const wait = this.gate.acquire();
        if (wait) await wait;
        if (this.stopping) {
          this.gate.release();
          this.handBack(msg);
          continue;
        }
        this.inFlight.set(msg, Date.now());
        if (this.options.pool) void this.processPooled(msg, this.options.pool);
        else void this.process(msg);
      }
    } catch (err) {
      if (!this.stopping) {
        this.logger.error(`${this.options.handlerId}: consumer stopped: ${describeCause(err)}`);
      }
    } finally {
      this.loopEnded = true;
    }
  }

  /**
   * Batch mode: the first message of a batch waits for a concurrency slot, the rest join it. The
   * loop stops taking messages while every slot is busy, so what the client has pulled stays
   * within its pull of `maxMessages × concurrency`, and no message waits behind more batches
   * than there are slots.
   */
  private async gather(batches: BatchAssembler, msg: JsMsg): Promise<void> {
    if (!this.batchSlot) {
      const wait = this.gate.acquire();
      if (wait) await wait;
      if (this.stopping) {
        this.gate.release();
        this.handBack(msg);
        return;
      }
      this.batchSlot = true;
    }
    batches.add(msg);
  }

  private startBatch(feed: BatchFeed, msgs: JsMsg[]): void {
    this.batchSlot = false;
    const now = Date.now();
    for (const msg of msgs) this.inFlight.set(msg, now);
    void this.processBatch(feed, msgs);
  }

  private async processBatch(feed: BatchFeed, msgs: JsMsg[]): Promise<void> {
    try {
      await feed.dispatch(msgs);
    } catch (err) {
      this.reportDispatchBug(msgs[0], err);
    } finally {
      this.handled += msgs.length;
      for (const msg of msgs) this.inFlight.delete(msg);
    }
    this.gate.release();
    if (this.idle && this.inFlight.size === 0) this.idle();
  }

  /**
   * The circuit breaker is open: the message waits outside the concurrency gate, in `inFlight`
   * so the heartbeat keeps its ack wait alive (queued behind busy slots, it would be redelivered
   * and use up an attempt), and takes its turn at the gate once the breaker is no longer open.
   */
  private async parkWhileOpen(msg: JsMsg, notOpen: Promise<boolean>): Promise<void> {
    this.inFlight.set(msg, Date.now());
    const go = await notOpen;
    if (go && !this.stopping) {
      const wait = this.gate.acquire();
      if (wait) await wait;
      if (!this.stopping) {
        void (this.options.pool ? this.processPooled(msg, this.options.pool) : this.process(msg));
        return;
      }
      this.gate.release();
    }
    this.inFlight.delete(msg);
    this.handBack(msg);
    if (this.idle && this.inFlight.size === 0) this.idle();
  }

  /** Ordered mode: a busy key queues the message; a free key takes a concurrency slot. */
  private async schedule(msg: JsMsg): Promise<void> {
    const { key, decoded } = this.options.orderKey!(msg);
    const lanes = this.lanes!;
    if (lanes.enqueueIfBusy(key, { msg, decoded })) {
      // Queued messages are out of the client's buffer, so bound them ourselves.
      if (lanes.queued >= this.options.prefetch) {
        await new Promise<void>((resolve) => (this.laneSpace = resolve));
      }
      return;
    }
    const wait = this.gate.acquire();
    if (wait) await wait;
    void this.runLane(key, { msg, decoded });
  }

  private async runLane(key: string, first: LaneItem): Promise<void> {
    let item: LaneItem | undefined = first;
    try {
      while (item) {
        if (this.stopping) {
          this.handBack(item.msg);
        } else {
          this.inFlight.set(item.msg, Date.now());
          await this.handle(item.msg, item.decoded);
        }
        item = this.lanes!.next(key);
        if (this.laneSpace && this.lanes!.queued < this.options.prefetch) {
          const resume = this.laneSpace;
          this.laneSpace = undefined;
          resume();
        }
      }
    } finally {
      this.gate.release();
      if (this.idle && this.inFlight.size === 0) this.idle();
    }
  }

  private async handle(msg: JsMsg, decoded: unknown): Promise<void> {
    try {
      await this.dispatcher.dispatch(msg, decoded);
    } catch (err) {
      this.reportDispatchBug(msg, err);
    } finally {
      this.handled++;
      this.inFlight.delete(msg);
    }
  }

  /** dispatch settles every outcome itself; reaching here is a bug, never a reason to ack. */
  private reportDispatchBug(msg: JsMsg, err: unknown): void {
    let seq: number | string;
    try {
      seq = msg.seq;
    } catch {
      seq = 'unknown';
    }
    this.logger.error(`${this.options.handlerId}: unexpected dispatch failure on seq ${seq}: ${describeCause(err)}`);
  }

  private async process(msg: JsMsg): Promise<void> {
    // handle() inlined: one async frame (a promise and a hop) less per message on the default path.
    try {
      await this.dispatcher.dispatch(msg, NOT_DECODED);
    } catch (err) {
      this.reportDispatchBug(msg, err);
    } finally {
      this.handled++;
      this.inFlight.delete(msg);
    }
    this.gate.release();
    if (this.idle && this.inFlight.size === 0) this.idle();
  }

  /**
   * The message is in flight while it waits for a pool slot, so the heartbeat keeps its ack wait
   * from running out behind a busy pool. A runner that began stopping meanwhile hands it back
   * unhandled: the partition's next owner gets it first.
   */
  private async processPooled(msg: JsMsg, pool: ConcurrencyGate): Promise<void> {
    const wait = pool.acquire();
    if (wait) await wait;
    try {
      if (this.stopping) this.handBack(msg);
      else {
        await this.dispatcher.dispatch(msg, NOT_DECODED);
        this.handled++;
      }
    } catch (err) {
      this.handled++;
      this.reportDispatchBug(msg, err);
    } finally {
      pool.release();
      this.inFlight.delete(msg);
    }
    this.gate.release();
    if (this.idle && this.inFlight.size === 0) this.idle();
  }

  /**
   * Stops new deliveries without dropping the ones already on the wire: an unsubscribe alone
   * would discard messages the server sent for the open pull request, leaving them stuck until
   * their ack wait ran out. Draining the inbox (UNSUB, then a flush round trip) lets those
   * arrive; the loop hands each back at once because `stopping` is set. The client keeps the
   * subscription private, hence the guarded reach for it.
   */
  /** A message this stopping runner will not handle: handed back now, or once the inbox is closed. */
  private handBack(msg: JsMsg): void {
    if (this.holding) this.held.push(msg);
    else this.settlement.nakImmediately(msg);
  }

  /**
   * A stopping runner asks for no more messages. The client's refill pulls are internal
   * (nats.js 3.x `pull`, queued as functions its iterator runs); without these members nothing
   * changes. New refills are not asked for, and one still queued once the inbox is closed is
   * skipped: sent then, the server would answer it to a subject nobody listens on, and JetStream
   * counts those messages as delivered until the ack wait ends (seen: a refill batch of 2 or 4
   * stranded in about 1 of 10 runs of the lifecycle spec's under-load shutdown test).
   */
  private stopRefills(): void {
    const client = this.messages as unknown as { pull?: unknown; _push?: (item: unknown) => void } | undefined;
    if (!client || typeof client.pull !== 'function' || typeof client._push !== 'function') return;
    client.pull = () => undefined;
    const push = client._push.bind(client);
    client._push = (item: unknown) => {
      if (typeof item !== 'function' || this.endIteration) return push(item);
      const work = item as () => void;
      push(() => {
        if (!this.inboxClosed) work();
      });
    };
  }

  /**
   * Pull requests already sent stay open on the server until their messages are sent. Closing
   * the inbox before those answers arrive would strand them, so wait until the client counts
   * none outstanding; bounded, since on an idle stream a request stays open until it expires.
   */
  private async untilPullsAnswered(): Promise<void> {
    const pending = (this.messages as unknown as { pending?: { msgs: number } } | undefined)?.pending;
    if (!pending) return;
    const deadline = Date.now() + PULLS_ANSWERED_MAX_MS;
    while (pending.msgs > 0 && Date.now() < deadline && !this.loopEnded) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  private async drainInbox(): Promise<void> {
    const sub = (this.messages as unknown as { sub?: { drain?: () => Promise<void>; isClosed?: () => boolean } } | undefined)?.sub;
    if (!sub?.drain || sub.isClosed?.()) return;
    try {
      await sub.drain();
    } catch {
      // Connection closing or already drained: nothing more can arrive anyway.
    }
  }

  /**
   * One timer per consumer, not per message: handler calls running longer than a third of the
   * ack wait get a `working()`, so a slow handler is never redelivered to another instance
   * while it is still running.
   */
  private startHeartbeat(): void {
    const every = Math.max(100, Math.floor(this.options.ackWaitMs / 3));
    this.heartbeat = setInterval(() => {
      const due = Date.now() - every;
      for (const [msg, started] of this.inFlight) {
        if (started <= due) {
          try {
            msg.working();
          } catch {
            // Connection gone: the server redelivers after the ack wait; nothing to keep alive.
          }
        }
      }
    }, every);
    this.heartbeat.unref();
  }

  private waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.inFlight.size === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.idle = undefined;
        resolve(false);
      }, timeoutMs);
      this.idle = () => {
        clearTimeout(timer);
        this.idle = undefined;
        resolve(true);
      };
    });
  }

  private async watchStatus(messages: ConsumerMessages): Promise<void> {
    for await (const status of messages.status()) {
      switch (status.type) {
        case 'consumer_deleted':
        case 'consumer_not_found':
        case 'stream_not_found':
          this.logger.error(`${this.options.handlerId}: ${status.type.replace(/_/g, ' ')}; waiting for it to come back`);
          break;
        case 'consumer_pinned':
          this.pin = status.id;
          this.logger.log(`${this.options.handlerId}: this instance is now the active (pinned) consumer of its group`);
          break;
        case 'consumer_unpinned':
          if (this.pin) this.logger.warn(`${this.options.handlerId}: the server moved the pin to another instance; standing by`);
          this.pin = undefined;
          break;
        case 'heartbeats_missed':
          this.logger.warn(`${this.options.handlerId}: ${status.count} heartbeats missed from the server`);
          break;
        default:
          break;
      }
    }
  }
}
