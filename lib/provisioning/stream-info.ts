import type { JetStreamManager, StreamInfo } from '@nats-io/jetstream';
import { ApiCode, hasApiCode } from '../errors/jetstream-api-codes.js';

/** Stream info, or undefined when the server says the stream does not exist. */
export async function streamInfoOrUndefined(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (hasApiCode(err, ApiCode.StreamNotFound)) return undefined;
    throw err;
  }
}
