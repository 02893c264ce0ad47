/**
 * How a payload becomes bytes and back. The publisher stamps `contentType` on every message it
 * encodes with a codec other than JSON, and a consumer picks the codec by that header, so
 * producers on different codecs can share one durable.
 */
export interface Codec {
  /** MIME type on the `Content-Type` header, e.g. `application/msgpack`. */
  readonly contentType: string;
  /** Throws on a value the format cannot carry; nothing is sent then. */
  encode(value: unknown): Uint8Array;
  /** Throws on bytes that are not this format; the message is dead-lettered as `invalid-payload`. */
  decode(data: Uint8Array): unknown;
  /**
   * Loads what the codec needs (an optional peer dependency). The module calls it once before
   * the codec's first use; `encode`/`decode` may assume it has resolved.
   */
  prepare?(): Promise<void>;
}

/** The header naming a message's codec. Absent: the handler's codec (JSON unless configured). */
export const CONTENT_TYPE_HEADER = 'Content-Type';

export const JSON_CONTENT_TYPE = 'application/json';
