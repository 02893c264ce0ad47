import { decodeJson } from './codec.js';

/** Turns message bytes into what the pipeline starts from: raw bytes or parsed JSON. */
export interface PayloadDecoder {
  /** True when handlers get the bytes themselves. */
  readonly raw: boolean;
  decode(data: Uint8Array): unknown;
}

const RAW: PayloadDecoder = { raw: true, decode: (data) => data };
const JSON_DECODER: PayloadDecoder = { raw: false, decode: decodeJson };

/** Chosen once per handler from the first parameter's declared type. */
export function createPayloadDecoder(payloadType: unknown): PayloadDecoder {
  return payloadType === Uint8Array || (typeof Buffer !== 'undefined' && payloadType === Buffer) ? RAW : JSON_DECODER;
}
