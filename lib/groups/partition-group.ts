import type { Logger } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { describeCause } from '../errors/jetstream-errors.js';
import { assignPartitions } from './partition-assignment.js';
import { GroupMembership } from './group-membership.js';

const RETRY_START_MS = 1_000;

/** A partition this instance consumes; `stop` finishes the message in hand, then releases the pin. */
export interface PartitionWorker {
  stop(): Promise<void>;
}

export interface PartitionGroupOptions {
  readonly stream: string;
  readonly durable: string;
  readonly count: number;
  readonly memberTtlMs: number;
  readonly replicas: number;
  readonly label: string;
}

/**
 * One instance's share of a partitioned consumer group: it joins the membership, and whenever the
 * live members change it consumes exactly the partitions the assignment gives it, releasing the
 * others. Two instances that briefly disagree on the members never consume one partition at once:
 * each partition's consumer is pinned to one instance, and the next owner's pulls wait until the
 * pin is released (graceful) or its TTL runs out (crash).
 */
export class PartitionGroup {
  readonly memberId = `${hostname().replace(/[^A-Za-z0-9_-]/g, '_')}-${process.pid}-${randomBytes(3).toString('hex')}`;
  private readonly workers = new Map<number, PartitionWorker>();
  private desired: readonly number[] = [];
  private membership?: GroupMembership;
  private chain: Promise<void> = Promise.resolve();
  private stopping = false;

  constructor(
    private readonly options: PartitionGroupOptions,
    private readonly startPartition: (partition: number) => Promise<PartitionWorker>,
    private readonly logger: Logger,
  ) {}

  /** Partitions this instance consumes now. */
  get owned(): number[] {
    return [...this.workers.keys()].sort((a, b) => a - b);
  }

  async start(nc: NatsConnection): Promise<void> {
    this.membership = await GroupMembership.join(
      nc,
      { group: `${keyToken(this.options.stream)}.${keyToken(this.options.durable)}`, memberId: this.memberId, ttlMs: this.options.memberTtlMs, replicas: this.options.replicas },
      (members) => this.rebalance(members),
      this.logger,
    );
    await this.chain;
  }

  /** Leaves the group first, so the others start waiting for the pins this instance then releases. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.membership?.leave();
    this.desired = [];
    await this.reconcile();
  }

  private rebalance(members: readonly string[]): void {
    if (this.stopping) return;
    this.desired = assignPartitions(this.options.count, members).get(this.memberId) ?? [];
    this.logger.log(`${this.options.label}: ${members.length} member(s); this instance takes partition(s) ${this.desired.join(', ') || 'none'} of ${this.options.count}`);
    void this.reconcile();
  }

  /** One reconciliation at a time, each against the latest assignment. */
  private reconcile(): Promise<void> {
    this.chain = this.chain.then(async () => {
      const want = new Set(this.desired);
      const release = [...this.workers.keys()].filter((p) => !want.has(p));
      const take = [...want].filter((p) => !this.workers.has(p));
      await Promise.all([
        ...release.map(async (p) => {
          const worker = this.workers.get(p)!;
          this.workers.delete(p);
          await worker.stop().catch((err) => this.logger.error(`${this.options.label}: releasing partition ${p} failed: ${describeCause(err)}`));
        }),
        ...take.map(async (p) => {
          try {
            this.workers.set(p, await this.startPartition(p));
          } catch (err) {
            // Meanwhile the partition waits on the server; nothing is lost.
            this.logger.error(`${this.options.label}: could not start partition ${p} (${describeCause(err)}); trying again in ${RETRY_START_MS} ms`);
            if (!this.stopping) setTimeout(() => void this.reconcile(), RETRY_START_MS).unref();
          }
        }),
      ]);
    });
    return this.chain;
  }
}

/** A KV key token from a stream or durable name. */
function keyToken(name: string): string {
  return name.replace(/[^-/=\w]/g, '_');
}
