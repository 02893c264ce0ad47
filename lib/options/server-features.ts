import { ServerFeatureUnavailableError } from '../errors/server-feature-errors.js';

/**
 * The one table of nats-server versions the module's newer features need. Every gate reads it,
 * and `docs/server-features.md` names the same versions.
 */
export const SERVER_FEATURES = {
  messageTtl: { name: 'per-message TTL (Nats-TTL, allow_msg_ttl)', version: '2.11.0' },
  subjectDeleteMarkers: { name: 'subject delete markers (subject_delete_marker_ttl)', version: '2.11.0' },
  consumerPause: { name: 'consumer pause (pause_until)', version: '2.11.0' },
  exclusiveConsumer: { name: 'exclusive consumers (pinned_client priority groups)', version: '2.11.0' },
  partitionedConsumers: { name: 'partitioned consumer groups (pinned_client priority groups)', version: '2.11.0' },
  scheduleAt: { name: 'one-shot message schedules (@at, allow_msg_schedules)', version: '2.12.0' },
  scheduleRecurring: { name: 'recurring message schedules (cron, @every)', version: '2.14.0' },
  atomicBatch: { name: 'atomic batch publish (allow_atomic)', version: '2.12.0' },
} as const;

export type ServerFeature = keyof typeof SERVER_FEATURES;

/** Anything that knows the connected server's version (the connection, a CLI connection). */
export interface ServerVersionSource {
  readonly serverVersion: string;
}

/** True when `version` (`2.15.1`, `2.12.0-RC.1`) is at least `required`. */
export function versionAtLeast(version: string, required: string): boolean {
  const have = parse(version);
  const need = parse(required);
  for (let i = 0; i < 3; i++) {
    if (have[i] !== need[i]) return have[i] > need[i];
  }
  return true;
}

export function serverHasFeature(server: ServerVersionSource, feature: ServerFeature): boolean {
  return versionAtLeast(server.serverVersion, SERVER_FEATURES[feature].version);
}

/** Throws ServerFeatureUnavailableError, naming `usage`, when the server is too old for `feature`. */
export function requireServerFeature(server: ServerVersionSource, feature: ServerFeature, usage: string): void {
  if (serverHasFeature(server, feature)) return;
  const { name, version } = SERVER_FEATURES[feature];
  throw new ServerFeatureUnavailableError(name, version, server.serverVersion, usage);
}

function parse(version: string): [number, number, number] {
  const [a = 0, b = 0, c = 0] = version.split(/[.-]/).map((n) => Number.parseInt(n, 10) || 0);
  return [a, b, c];
}
