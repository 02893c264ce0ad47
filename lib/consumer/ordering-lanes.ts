import type { JsMsg } from '@nats-io/jetstream';

export interface LaneItem {
  readonly msg: JsMsg;
  readonly decoded: unknown;
}

/**
 * Per-key FIFO queues: a key with a message in flight queues the next ones behind it, so the
 * same key never runs twice at once and never out of stream order.
 */
export class OrderingLanes {
  private readonly lanes = new Map<string, LaneItem[]>();
  private queuedCount = 0;

  get queued(): number {
    return this.queuedCount;
  }

  /** True when the key has a message in flight; the item is then queued behind it. */
  enqueueIfBusy(key: string, item: LaneItem): boolean {
    const lane = this.lanes.get(key);
    if (!lane) {
      this.lanes.set(key, []);
      return false;
    }
    lane.push(item);
    this.queuedCount++;
    return true;
  }

  /** Next item of the key's lane, or undefined after closing the lane. */
  next(key: string): LaneItem | undefined {
    const lane = this.lanes.get(key);
    const item = lane?.shift();
    if (item) {
      this.queuedCount--;
      return item;
    }
    this.lanes.delete(key);
    return undefined;
  }

  /** Empties every queue, returning what was waiting (to hand back on shutdown). */
  drain(): LaneItem[] {
    const all: LaneItem[] = [];
    for (const lane of this.lanes.values()) all.push(...lane.splice(0));
    this.queuedCount = 0;
    return all;
  }
}
