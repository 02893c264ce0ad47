import { RequestPatternCapturedError } from '../errors/jetstream-errors.js';
import type { StreamDefinition } from '../options/jetstream-module-options.js';
import { subjectsOverlap } from '../options/subject-validation.js';
import type { StreamResolver } from '../provisioning/stream-resolver.js';

/**
 * A request that a stream captures is stored, and JetStream answers it with a publish ack
 * before any handler can: the caller gets `{ stream, seq }` instead of a reply. So request
 * subjects must stay outside every stream's subjects.
 */

/** Against the streams in the options: checked before anything is created. */
export function assertRequestPatternsFreeOfDeclaredStreams(patterns: readonly string[], streams: readonly StreamDefinition[]): void {
  for (const pattern of patterns) {
    for (const stream of streams) {
      const subject = stream.subjects.find((s) => subjectsOverlap(s, pattern));
      if (subject !== undefined) throw new RequestPatternCapturedError(pattern, stream.name, subject, 'declared in the options');
    }
  }
}

/** Against every stream on the server, including those other services own. */
export async function assertRequestPatternsFreeOfServerStreams(patterns: readonly string[], resolver: StreamResolver): Promise<void> {
  for (const pattern of patterns) {
    const captured = await resolver.capturing(pattern);
    if (captured) throw new RequestPatternCapturedError(pattern, captured.stream, captured.subject, 'on the server');
  }
}
