import { JetStreamApiError, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';

/** Stream info, or undefined when the server says the stream does not exist (10059). */
export async function streamInfoOrUndefined(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === 10059) return undefined;
    throw err;
  }
}
