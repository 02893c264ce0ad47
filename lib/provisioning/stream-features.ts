import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import type { StreamDefinition } from '../options/jetstream-module-options.js';
import { requireServerFeature, type ServerFeature } from '../options/server-features.js';
import { scheduleSubjects } from '../options/schedule-definition.js';
import { subjectCovers } from '../options/subject-validation.js';

// Stream flags of newer servers. An older server drops an unknown field without a word, so a
// stream "with" allow_msg_ttl would be created without it: refuse before asking.
const FLAG_FEATURES: ReadonlyArray<readonly [keyof StreamDefinition, ServerFeature]> = [
  ['allow_msg_ttl', 'messageTtl'],
  ['subject_delete_marker_ttl', 'subjectDeleteMarkers'],
  ['allow_msg_schedules', 'scheduleAt'],
  ['allow_atomic', 'atomicBatch'],
];

/** Throws ServerFeatureUnavailableError when the definition sets a flag the server lacks. */
export function assertStreamFlagsSupported(connection: JetStreamConnection, stream: StreamDefinition): void {
  for (const [field, feature] of FLAG_FEATURES) {
    const value = stream[field];
    if (value !== undefined && value !== false && value !== 0) {
      requireServerFeature(connection, feature, `stream "${stream.name}" sets ${field}`);
    }
  }
}

/** The newer features a stream has on, for the startup log: `per-message TTL, atomic batches`. */
export function enabledStreamFeatures(stream: Partial<StreamDefinition>): string[] {
  const on: string[] = [];
  if (stream.allow_msg_ttl) on.push('per-message TTL');
  if (stream.subject_delete_marker_ttl) on.push('subject delete markers');
  if (stream.allow_msg_schedules) on.push('message schedules');
  if (stream.allow_atomic) on.push('atomic batches');
  return on;
}

/**
 * A stream that allows schedules also captures `_schedules.<stream>.>`, where
 * `publisher.schedule()` and declared schedules store theirs, apart from the subjects handlers read.
 */
export function withScheduleSubjects(stream: StreamDefinition): StreamDefinition {
  if (!stream.allow_msg_schedules) return stream;
  const own = scheduleSubjects(stream.name);
  if (stream.subjects.some((s) => subjectCovers(s, own))) return stream;
  return { ...stream, subjects: [...stream.subjects, own] };
}
