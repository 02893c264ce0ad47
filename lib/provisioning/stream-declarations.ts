import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import type { StreamDefinition } from '../options/jetstream-module-options.js';
import { subjectsOverlap } from '../options/subject-validation.js';
import { diffConfig } from './config-diff.js';

/** Streams one place declares: the root's options or one `forFeature()`. */
export interface StreamDeclaration {
  /** Names the place in errors, e.g. `JetStreamModule.forRoot` or `OrdersModule (JetStreamModule.forFeature)`. */
  readonly source: string;
  readonly streams: readonly StreamDefinition[];
}

/**
 * The streams of every declaration, each once. A stream declared twice with the same
 * configuration is ensured once; with a different one, or two streams from different places
 * capturing the same subjects, startup fails naming both places: the server would otherwise
 * apply whichever came last, or refuse with an error that names neither.
 */
export function mergeStreamDeclarations(declarations: readonly StreamDeclaration[]): StreamDefinition[] {
  const merged: Array<{ readonly stream: StreamDefinition; readonly source: string }> = [];
  for (const { source, streams } of declarations) {
    for (const stream of streams) {
      const same = merged.find((m) => m.stream.name === stream.name);
      if (same) {
        const differs = [...new Set([...diffConfig(stream, same.stream), ...diffConfig(same.stream, stream)])];
        if (differs.length === 0) continue;
        throw new InvalidOptionsError(
          `Stream "${stream.name}" is declared by ${same.source} and by ${source} with a different ${differs.join(', ')}: ` +
            'declare it once, in the module that owns it (handlers in other modules find it by subject)',
        );
      }
      for (const other of merged) {
        if (other.source === source) continue;
        const clash = overlap(other.stream, stream);
        if (clash) {
          throw new InvalidOptionsError(
            `Streams "${other.stream.name}" (${other.source}) and "${stream.name}" (${source}) both capture ${clash}: a subject can belong to one stream only`,
          );
        }
      }
      merged.push({ stream, source });
    }
  }
  return merged.map((m) => m.stream);
}

function overlap(a: StreamDefinition, b: StreamDefinition): string | undefined {
  for (const x of a.subjects) {
    const y = b.subjects.find((s) => subjectsOverlap(x, s));
    if (y !== undefined) return x === y ? `"${x}"` : `"${x}" / "${y}"`;
  }
  return undefined;
}
