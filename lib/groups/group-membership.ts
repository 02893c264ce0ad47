import type { Logger } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import { describeCause } from '../errors/jetstream-errors.js';

/** The KV bucket holding every partitioned group's members, one key per live instance. */
export const GROUPS_BUCKET = 'nestjs-jetstream-groups';
// Only a garbage collector for the keys of crashed instances: liveness is read from the
// heartbeats' timestamps, since an entry that ages out of a bucket tells no watcher.
const BUCKET_MAX_AGE_MS = 10 * 60_000;

export interface MembershipTarget {
  /** KV key prefix of the group: `<stream>.<durable>`. */
  readonly group: string;
  readonly memberId: string;
  readonly ttlMs: number;
  readonly replicas: number;
}

/**
 * This instance's membership of a group: a heartbeat key `<group>.<member>` rewritten every
 * third of the TTL, and a watch of the group's keys. A member is live while its last heartbeat
 * is within the TTL of the newest heartbeat of the group, both stamped by the server, so the
 * instances' clocks do not matter. A graceful leave deletes the key: the others rebalance at once.
 */
export class GroupMembership {
  private readonly lastBeat = new Map<string, number>();
  private live: string[] = [];
  private timer?: NodeJS.Timeout;
  private watch?: Awaited<ReturnType<KV['watch']>>;
  private left = false;
  private initialised = false;

  private constructor(
    private readonly kv: KV,
    private readonly target: MembershipTarget,
    private readonly onChange: (members: readonly string[]) => void,
    private readonly logger: Logger,
  ) {}

  /** Joins; resolves once this instance sees itself among the members (onChange has run once). */
  static async join(nc: NatsConnection, target: MembershipTarget, onChange: (members: readonly string[]) => void, logger: Logger): Promise<GroupMembership> {
    const kv = await openBucket(nc, target.replicas);
    const membership = new GroupMembership(kv, target, onChange, logger);
    await membership.start();
    return membership;
  }

  get members(): readonly string[] {
    return this.live;
  }

  private get key(): string {
    return `${this.target.group}.${this.target.memberId}`;
  }

  private async start(): Promise<void> {
    await this.firstBeat();
    this.watch = await this.kv.watch({ key: `${this.target.group}.*` });
    const seenSelf = new Promise<void>((resolve, reject) => {
      void (async () => {
        try {
          for await (const entry of this.watch!) {
            // The first values arrive one by one: deciding before the last of them would take
            // partitions from a partial member list and hand them back a moment later.
            if (!this.initialised && (entry.isUpdate || entry.delta === 0)) this.initialised = true;
            this.observe(entry);
            if (this.initialised && this.live.includes(this.target.memberId)) resolve();
          }
        } catch (err) {
          if (!this.left) this.logger.error(`partition group ${this.target.group}: membership watch ended: ${describeCause(err)}`);
          reject(err as Error);
        }
      })();
    });
    this.timer = setInterval(() => {
      this.beat().catch((err) => this.logger.warn(`partition group ${this.target.group}: heartbeat failed (${describeCause(err)}); the others drop this instance after ${this.target.ttlMs} ms without one`));
    }, Math.floor(this.target.ttlMs / 3));
    this.timer.unref();
    await seenSelf;
  }

  /**
   * A bucket just created on a cluster answers "no responders" (JetStreamNotEnabled) or times
   * out until its stream has a leader: seen when several instances start together on a fresh
   * 3-node cluster. Those are retried for a bounded time; anything else fails startup at once.
   */
  private async firstBeat(): Promise<void> {
    const deadline = Date.now() + Math.max(10_000, this.target.ttlMs * 3);
    for (let delay = 100; ; delay = Math.min(delay * 2, 1_000)) {
      try {
        return await this.beat();
      } catch (err) {
        if (!isLeaderless(err) || Date.now() + delay > deadline) throw err;
        this.logger.debug?.(`partition group ${this.target.group}: the members bucket cannot answer yet (${describeCause(err)}); retrying`);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private async beat(): Promise<void> {
    if (this.left) return;
    await this.kv.put(this.key, JSON.stringify({ pid: process.pid, at: new Date().toISOString() }));
  }

  private observe(entry: KvWatchEntry): void {
    const member = entry.key.slice(this.target.group.length + 1);
    if (entry.operation === 'PUT') this.lastBeat.set(member, entry.created.getTime());
    else this.lastBeat.delete(member);
    const newest = Math.max(0, ...this.lastBeat.values());
    const live = [...this.lastBeat].filter(([, at]) => at >= newest - this.target.ttlMs).map(([m]) => m).sort();
    if (!this.initialised || live.join('\u0000') === this.live.join('\u0000')) return;
    this.live = live;
    if (!live.includes(this.target.memberId)) return;
    this.onChange(live);
  }

  /** Stops heartbeating and deletes this instance's key, so the others take its partitions now. */
  async leave(): Promise<void> {
    if (this.left) return;
    this.left = true;
    clearInterval(this.timer);
    try {
      await this.kv.delete(this.key);
    } catch (err) {
      this.logger.warn(`partition group ${this.target.group}: could not remove this instance's key (${describeCause(err)}); the others drop it after ${this.target.ttlMs} ms`);
    }
    this.watch?.stop();
  }
}

async function openBucket(nc: NatsConnection, replicas: number): Promise<KV> {
  const kvm = new Kvm(nc);
  try {
    return await kvm.create(GROUPS_BUCKET, { history: 1, ttl: BUCKET_MAX_AGE_MS, replicas });
  } catch {
    // Made by another instance with other settings (replicas): use it as it is.
    return kvm.open(GROUPS_BUCKET);
  }
}

/** The bucket's stream has no leader yet (just created, or electing one): worth another try. */
function isLeaderless(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return err.name === 'JetStreamNotEnabled' || err.name === 'TimeoutError' || /no responders/i.test(err.message);
}
