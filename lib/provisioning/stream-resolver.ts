import type { StreamInfo } from '@nats-io/jetstream';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import { streamInfoOrUndefined } from './stream-info.js';
import { kvBucketOf, kvBucketStream } from '../context/kv-change.js';
import { HandlerConfigurationError, handlerLabel, NoStreamForHandlerError } from '../errors/jetstream-errors.js';
import { subjectCovers, subjectsOverlap } from '../options/subject-validation.js';

/** How many streams a "no stream captures" error lists; a shared server may hold hundreds. */
const CONSIDERED_LISTED = 8;

/**
 * Finds the stream a handler reads from by asking the server, so handlers work on streams
 * another service owns, not only on the ones in this module's options.
 */
export class StreamResolver {
  private streams?: Promise<StreamInfo[]>;

  constructor(private readonly connection: JetStreamConnection) {}

  async resolve(handlerId: string, subject: string, explicit: string | undefined): Promise<string> {
    const label = handlerLabel(handlerId, subject);
    if (explicit) {
      const info = await this.info(explicit);
      if (!info) {
        const bucket = kvBucketOf(subject);
        if (bucket !== undefined && explicit === kvBucketStream(bucket)) {
          throw new HandlerConfigurationError(`${label}: KV bucket "${bucket}" does not exist (no stream ${explicit}); create it before the app starts, or set createBucket in the handler's options`);
        }
        throw new HandlerConfigurationError(`${label}: stream "${explicit}" does not exist`);
      }
      if (!subjectsOf(info).some((s) => subjectsOverlap(s, subject))) {
        throw new HandlerConfigurationError(
          `${label}: stream "${explicit}" does not capture "${subject}" (its subjects: ${subjectsOf(info).join(', ') || 'none'})`,
        );
      }
      return explicit;
    }
    const all = await this.list();
    const covering = all.filter((info) => subjectsOf(info).some((s) => subjectCovers(s, subject)));
    const candidates = covering.length > 0 ? covering : all.filter((info) => subjectsOf(info).some((s) => subjectsOverlap(s, subject)));
    if (candidates.length === 1) return candidates[0].config.name;
    if (candidates.length === 0) {
      const nearest = nearestFirst(all, subject);
      const listed = nearest.slice(0, CONSIDERED_LISTED).map((info) => `"${info.config.name}" (${subjectsOf(info).join(', ') || 'no subjects'})`);
      throw new NoStreamForHandlerError(handlerId, subject, listed, nearest.length - listed.length);
    }
    throw new HandlerConfigurationError(
      `${label}: streams ${candidates.map((c) => `"${c.config.name}"`).join(', ')} all capture "${subject}"; choose one with the "stream" option`,
    );
  }

  /** The first stream on the server with a subject that overlaps `pattern`, with that subject. */
  async capturing(pattern: string): Promise<{ stream: string; subject: string } | undefined> {
    for (const info of await this.list()) {
      const subject = subjectsOf(info).find((s) => subjectsOverlap(s, pattern));
      if (subject !== undefined) return { stream: info.config.name, subject };
    }
    return undefined;
  }

  private list(): Promise<StreamInfo[]> {
    // One paged listing serves every handler of the bootstrap.
    this.streams ??= (async () => {
      // By name: on a 3-node cluster the listing named one stream twice while other instances
      // were creating streams (seen in test/reliability/partitioned-cluster.spec.ts), and the
      // handler was refused as if two streams captured its subject.
      const all = new Map<string, StreamInfo>();
      for await (const info of this.connection.jsm.streams.list()) all.set(info.config.name, info);
      return [...all.values()];
    })();
    return this.streams;
  }

  private info(name: string): Promise<StreamInfo | undefined> {
    return streamInfoOrUndefined(this.connection.jsm, name);
  }

}

function subjectsOf(info: StreamInfo): string[] {
  return info.config.subjects ?? [];
}

/** Streams whose subjects share the most leading tokens with `subject` first (likely typos), then by name. */
function nearestFirst(all: readonly StreamInfo[], subject: string): StreamInfo[] {
  const tokens = subject.split('.');
  const shared = (s: string) => {
    const other = s.split('.');
    let n = 0;
    while (n < tokens.length && n < other.length && (other[n] === tokens[n] || other[n] === '*' || other[n] === '>')) n++;
    return n;
  };
  const score = new Map(all.map((info) => [info, Math.max(0, ...subjectsOf(info).map(shared))]));
  return [...all].sort((a, b) => score.get(b)! - score.get(a)! || a.config.name.localeCompare(b.config.name));
}
