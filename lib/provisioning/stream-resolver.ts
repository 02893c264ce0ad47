import type { StreamInfo } from '@nats-io/jetstream';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import { streamInfoOrUndefined } from './stream-info.js';
import { HandlerConfigurationError } from '../errors/jetstream-errors.js';
import { subjectCovers, subjectsOverlap } from '../options/subject-validation.js';

/**
 * Finds the stream a handler reads from by asking the server, so handlers work on streams
 * another service owns, not only on the ones in this module's options.
 */
export class StreamResolver {
  private streams?: Promise<StreamInfo[]>;

  constructor(private readonly connection: JetStreamConnection) {}

  async resolve(handlerId: string, subject: string, explicit: string | undefined): Promise<string> {
    if (explicit) {
      const info = await this.info(explicit);
      if (!info) {
        throw new HandlerConfigurationError(`@OnEvent("${subject}") on ${handlerId}: stream "${explicit}" does not exist`);
      }
      if (!subjectsOf(info).some((s) => subjectsOverlap(s, subject))) {
        throw new HandlerConfigurationError(
          `@OnEvent("${subject}") on ${handlerId}: stream "${explicit}" does not capture "${subject}" (its subjects: ${subjectsOf(info).join(', ') || 'none'})`,
        );
      }
      return explicit;
    }
    const all = await this.list();
    const covering = all.filter((info) => subjectsOf(info).some((s) => subjectCovers(s, subject)));
    const candidates = covering.length > 0 ? covering : all.filter((info) => subjectsOf(info).some((s) => subjectsOverlap(s, subject)));
    if (candidates.length === 1) return candidates[0].config.name;
    if (candidates.length === 0) {
      throw new HandlerConfigurationError(
        `@OnEvent("${subject}") on ${handlerId}: no stream captures "${subject}"; add it to a stream's subjects (module option "streams") or create the stream`,
      );
    }
    throw new HandlerConfigurationError(
      `@OnEvent("${subject}") on ${handlerId}: streams ${candidates.map((c) => `"${c.config.name}"`).join(', ')} all capture "${subject}"; choose one with the "stream" option`,
    );
  }

  private list(): Promise<StreamInfo[]> {
    // One paged listing serves every handler of the bootstrap.
    this.streams ??= (async () => {
      const all: StreamInfo[] = [];
      for await (const info of this.connection.jsm.streams.list()) all.push(info);
      return all;
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
