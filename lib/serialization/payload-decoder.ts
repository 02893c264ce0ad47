import type { MsgHdrs } from '@nats-io/transport-node';
import { PayloadValidationError } from '../errors/jetstream-errors.js';
import { CONTENT_TYPE_HEADER, type Codec } from '../wire/codec.js';
import type { SchemaVersionOptions } from '../decorators/on-event-options.js';
import { decodeJson, jsonCodec } from './codec.js';
import { headerOf } from './message-headers.js';
import { createUpcaster, type VersionUpcaster } from './upcast.js';
import { isKvRemoval } from '../context/kv-change.js';

/** What a decoder reads of a message: its bytes and headers (a `JsMsg` is one). */
export interface EncodedMessage {
  readonly data: Uint8Array;
  readonly headers?: MsgHdrs;
}

/** Turns a message into what the pipeline starts from: raw bytes, or the decoded (and upcast) payload. */
export interface PayloadDecoder {
  /** True when handlers get the bytes themselves. */
  readonly raw: boolean;
  decode(msg: EncodedMessage): unknown;
}

export interface DecoderOptions {
  /** Decodes messages without a `Content-Type` header. */
  readonly fallback?: Codec;
  /** Codecs a `Content-Type` header may name, besides JSON and the fallback. */
  readonly codecs?: readonly Codec[];
  readonly schemaVersion?: SchemaVersionOptions;
}

const RAW: PayloadDecoder = { raw: true, decode: (msg) => msg.data };

/** Chosen once per handler from the first parameter's declared type and the handler's options. */
export function createPayloadDecoder(payloadType: unknown, options: DecoderOptions = {}): PayloadDecoder {
  if (payloadType === Uint8Array || (typeof Buffer !== 'undefined' && payloadType === Buffer)) return RAW;
  const table = codecTable(options);
  const fallback = options.fallback ?? jsonCodec;
  if (table.size === 1 && fallback === jsonCodec && !options.schemaVersion) return new JsonDecoder(table);
  return new CodecDecoder(fallback, table, options.schemaVersion ? createUpcaster(options.schemaVersion) : undefined);
}

function codecTable(options: DecoderOptions): Map<string, Codec> {
  const table = new Map<string, Codec>();
  for (const codec of [jsonCodec, ...(options.codecs ?? []), ...(options.fallback ? [options.fallback] : [])]) {
    table.set(normalise(codec.contentType), codec);
  }
  return table;
}

// `application/json; charset=utf-8` names the JSON codec; case does not matter in MIME types.
function normalise(contentType: string): string {
  const semi = contentType.indexOf(';');
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

/**
 * JSON is the only codec the handler knows: the headers are read only when the bytes are not
 * JSON, to say why. Parsing the headers of every message costs the default path about as much
 * as the JSON parse of a small payload.
 */
class JsonDecoder implements PayloadDecoder {
  readonly raw = false;

  constructor(private readonly codecs: ReadonlyMap<string, Codec>) {}

  decode(msg: EncodedMessage): unknown {
    try {
      return decodeJson(msg.data);
    } catch (err) {
      const contentType = msg.headers ? headerOf(msg.headers, CONTENT_TYPE_HEADER) : undefined;
      if (contentType !== undefined && !this.codecs.has(normalise(contentType))) throw noCodec(contentType, this.codecs);
      throw err;
    }
  }
}

function noCodec(contentType: string, codecs: ReadonlyMap<string, Codec>): PayloadValidationError {
  return new PayloadValidationError(
    `No codec for content type "${contentType}" (known: ${[...codecs.keys()].join(', ')}); add it to JetStreamModule.forRoot({ codecs }) or the handler's { codec }`,
  );
}

class CodecDecoder implements PayloadDecoder {
  readonly raw = false;

  constructor(
    private readonly fallback: Codec,
    private readonly codecs: ReadonlyMap<string, Codec>,
    private readonly upcaster: VersionUpcaster | undefined,
  ) {}

  decode(msg: EncodedMessage): unknown {
    const headers = msg.headers;
    const contentType = headers ? headerOf(headers, CONTENT_TYPE_HEADER) : undefined;
    let codec = this.fallback;
    if (contentType !== undefined) {
      const named = this.codecs.get(normalise(contentType));
      if (!named) throw noCodec(contentType, this.codecs);
      codec = named;
    }
    const payload = codec.decode(msg.data);
    return this.upcaster ? this.upcaster.upcast(payload, headers) : payload;
  }
}

/**
 * For a KV bucket's stream: a delete, purge or server-written removal marker has no value (its
 * body is empty or, on a marker, not the user's), so it decodes to undefined, whatever the codec.
 */
export function withKvRemovals(decoder: PayloadDecoder): PayloadDecoder {
  return {
    raw: decoder.raw,
    decode(msg) {
      const headers = msg.headers;
      if (headers && isKvRemoval(headerOf(headers, 'KV-Operation'), headerOf(headers, 'Nats-Marker-Reason'))) return undefined;
      return decoder.decode(msg);
    },
  };
}
