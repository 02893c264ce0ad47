import { PayloadEncodingError, PayloadValidationError } from '../errors/jetstream-errors.js';
import { JSON_CONTENT_TYPE, type Codec } from '../wire/codec.js';

const encoder = new TextEncoder();
// fatal: invalid UTF-8 must fail loudly rather than reach a handler as U+FFFD.
const decoder = new TextDecoder('utf-8', { fatal: true });
const EMPTY = new Uint8Array(0);

/** JSON by default; bytes pass through untouched so binary formats stay the caller's choice. */
export function encodePayload(payload: unknown): Uint8Array {
  if (payload instanceof Uint8Array) return payload;
  if (payload === undefined) return EMPTY;
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (err) {
    throw new PayloadEncodingError(`Payload cannot be encoded as JSON: ${(err as Error).message}`, { cause: err });
  }
  if (json === undefined) {
    throw new PayloadEncodingError(`Payload of type ${typeof payload} cannot be encoded as JSON`);
  }
  return encoder.encode(json);
}

/** Parses a JSON payload; an empty payload is `undefined` (an event with no body). */
export function decodeJson(data: Uint8Array): unknown {
  if (data.length === 0) return undefined;
  let text: string;
  try {
    text = decoder.decode(data);
  } catch (err) {
    throw new PayloadValidationError('Payload is not valid UTF-8', [], { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new PayloadValidationError(`Payload is not valid JSON (${(err as Error).message})`, [], { cause: err });
  }
}

/** The default codec. Its messages carry no `Content-Type` header: a header-less message is JSON. */
export const jsonCodec: Codec = Object.freeze({
  contentType: JSON_CONTENT_TYPE,
  encode: encodePayload,
  decode: decodeJson,
});

/** Awaits each codec's `prepare` (loading its optional peer); startup fails if one cannot load. */
export async function prepareCodecs(codecs: readonly (Codec | undefined)[]): Promise<void> {
  await Promise.all(codecs.map((codec) => codec?.prepare?.()));
}
