import { Logger } from '@nestjs/common';
import { nanos } from '@nats-io/transport-node';
import { RetentionPolicy, StorageType, type StreamConfig, type StreamInfo } from '@nats-io/jetstream';
import { subjectCovers } from '../options/subject-validation.js';
import { DEFAULT_DEAD_LETTER_STREAM } from '../dead-letters/dead-letter-target.js';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import { streamInfoOrUndefined } from './stream-info.js';
import { describeCause, StreamConfigDriftError, StreamProvisioningError } from '../errors/jetstream-errors.js';
import type { StreamDefinition } from '../options/jetstream-module-options.js';
import { diffConfig } from './config-diff.js';
import { assertStreamFlagsSupported, enabledStreamFeatures, withScheduleSubjects } from './stream-features.js';

// Fields the server refuses to change on an existing stream (nats-server stream.go update
// validation). Named up front so the error says which one. Retention is special: limits and
// interest switch in place (2.10+), but nothing moves to or from work-queue.
const IMMUTABLE_STREAM_FIELDS = ['storage', 'mirror'];

/** Creates missing streams, updates changed ones, and refuses changes the server cannot make. */
export class StreamProvisioner {
  private readonly logger = new Logger('JetStream');

  constructor(private readonly connection: JetStreamConnection) {}

  async ensureAll(streams: readonly StreamDefinition[]): Promise<void> {
    for (const stream of streams) {
      await this.ensure(stream);
    }
  }

  async ensure(declared: StreamDefinition): Promise<StreamInfo> {
    const { jsm } = this.connection;
    assertStreamFlagsSupported(this.connection, declared);
    const desired = withScheduleSubjects(declared);
    const existing = await this.info(desired.name);
    if (!existing) {
      try {
        const created = await jsm.streams.add(desired);
        this.logger.log(`Created stream "${desired.name}" (${desired.subjects.join(', ')})${withFeatures(created.config)}`);
        return created;
      } catch (err) {
        throw new StreamProvisioningError(desired.name, describeCause(err), { cause: err });
      }
    }
    const changed = diffConfig(desired, existing.config, ['name']);
    if (changed.length === 0) return existing;
    const immutable = changed.filter(
      (f) =>
        IMMUTABLE_STREAM_FIELDS.includes(f) ||
        (f === 'retention' &&
          (desired.retention === RetentionPolicy.Workqueue || existing.config.retention === RetentionPolicy.Workqueue)),
    );
    if (immutable.length > 0) {
      throw new StreamConfigDriftError(
        desired.name,
        immutable,
        `the server's copy has ${immutable.map((f) => `${f}=${show(existing.config, f)}`).join(', ')}, the options ask for ${immutable.map((f) => `${f}=${show(desired, f)}`).join(', ')}; this cannot change on an existing stream (create a new stream and move consumers, or delete it if its data can go)`,
      );
    }
    try {
      const updated = await jsm.streams.update(desired.name, { ...existing.config, ...desired } as StreamConfig);
      this.logger.log(`Updated stream "${desired.name}" (${changed.join(', ')})${withFeatures(updated.config)}`);
      return updated;
    } catch (err) {
      throw new StreamConfigDriftError(desired.name, changed, `the server refused the update: ${describeCause(err)}`);
    }
  }

  /**
   * Makes sure a dead-letter stream exists and captures the subject. Limits retention, because
   * a work-queue stream cannot be browsed by more than one consumer, which kills inspection.
   */
  async ensureDeadLetterStream(stream: string, subject: string, maxAgeMs: number): Promise<void> {
    const existing = await this.info(stream);
    if (!existing) {
      // Only the default stream claims the whole `dlq.>` namespace; a named one takes just its
      // subject, so several dead-letter streams can live side by side.
      const subjects = stream === DEFAULT_DEAD_LETTER_STREAM && subject.startsWith('dlq.') ? ['dlq.>'] : [subject];
      await this.ensure({
        name: stream,
        subjects,
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        max_age: nanos(maxAgeMs),
        duplicate_window: nanos(Math.min(maxAgeMs, 5 * 60_000)),
      });
      return;
    }
    if (existing.config.retention === RetentionPolicy.Workqueue) {
      throw new StreamConfigDriftError(stream, ['retention'], 'a dead-letter stream must use limits retention: work-queue messages cannot be listed or browsed');
    }
    const subjects = existing.config.subjects ?? [];
    if (subjects.some((s) => subjectCovers(s, subject))) return;
    await this.ensure({ ...existing.config, name: stream, subjects: [...subjects, subject] });
  }

  private info(name: string): Promise<StreamInfo | undefined> {
    return streamInfoOrUndefined(this.connection.jsm, name);
  }

}

function withFeatures(config: Partial<StreamDefinition>): string {
  const on = enabledStreamFeatures(config);
  return on.length ? `; allows ${on.join(', ')}` : '';
}

function show(config: object, field: string): string {
  return JSON.stringify((config as Record<string, unknown>)[field], (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}
