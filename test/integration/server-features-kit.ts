import { SERVER_FEATURES, serverHasFeature, type ServerFeature } from '../../lib/index.js';
import type { RawClient } from './kit.js';

/**
 * Feature specs run on every server the suite runs on (`npm test` on 2.15, `npm run test:floor`
 * on 2.10): where the server has the feature they test it, where it does not they assert the
 * refusal naming the version. Never a skip.
 */
export function hasFeature(client: RawClient, feature: ServerFeature): boolean {
  return serverHasFeature({ serverVersion: client.nc.info?.version ?? '0.0.0' }, feature);
}

/** The exact refusal of a server too old for `feature`, for `rejects.toThrow`. */
export function refusal(client: RawClient, feature: ServerFeature): RegExp {
  const { version } = SERVER_FEATURES[feature];
  const server = (client.nc.info?.version ?? '0.0.0').replace(/\./g, '\\.');
  return new RegExp(`needs nats-server ${version.replace(/\./g, '\\.')} or newer; the connected server is ${server}$`);
}
