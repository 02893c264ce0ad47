import type { JsMsg } from '@nats-io/jetstream';

/** What a batch handler's runner needs: the batch's limits and who settles a batch. */
export interface BatchFeed {
  readonly maxMessages: number;
  readonly maxWaitMs: number;
  /** Handles and settles every message of the batch; never throws. */
  dispatch(msgs: readonly JsMsg[]): Promise<void>;
}

/**
 * Gathers the messages a runner takes from its pull into batches: a batch starts with the
 * message that finds none forming, and is handed over when it is full or `maxWaitMs` after
 * that first message, whichever comes first. A timer, not the next message, ends a partial
 * batch, so a quiet stream still delivers within `maxWaitMs`.
 */
export class BatchAssembler {
  private forming: JsMsg[] = [];
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly feed: BatchFeed,
    private readonly start: (msgs: JsMsg[]) => void,
  ) {}

  /** True while a batch is being gathered (it holds a concurrency slot). */
  get gathering(): boolean {
    return this.forming.length > 0;
  }

  add(msg: JsMsg): void {
    if (this.forming.push(msg) === 1) this.timer = setTimeout(this.flush, this.feed.maxWaitMs);
    if (this.forming.length >= this.feed.maxMessages) this.flush();
  }

  private readonly flush = (): void => {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.forming.length === 0) return;
    const msgs = this.forming;
    this.forming = [];
    this.start(msgs);
  };

  /** A stopping runner takes back the batch still being gathered, to hand its messages back. */
  takeUnstarted(): JsMsg[] {
    clearTimeout(this.timer);
    this.timer = undefined;
    const msgs = this.forming;
    this.forming = [];
    return msgs;
  }
}
