import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { ResolvedHandlerOptions } from '../decorators/on-event-options.js';
import { JSON_CONTENT_TYPE } from '../wire/codec.js';
import type { AsyncApiMessage } from './asyncapi-document.js';
import type { JsonSchema } from './json-schema.js';

/** A Standard JSON Schema converter, where the schema library offers one (Zod 4 does; Valibot 1 does not). */
interface JsonSchemaConverter {
  input(options: { target: 'draft-07' }): Record<string, unknown>;
}

/**
 * The message of a handler with `{ schema }`: its payload from the schema library's own JSON
 * Schema output (the input side: what producers send, before transforms), its content type from
 * the handler's codec, and its schema name and the versions it accepts when it is versioned.
 */
export function standardSchemaMessage(id: string, options: ResolvedHandlerOptions, moduleContentType: string | undefined): AsyncApiMessage {
  const message: AsyncApiMessage = {
    name: id,
    contentType: options.codec?.contentType ?? moduleContentType ?? JSON_CONTENT_TYPE,
    payload: options.schema ? payloadSchema(options.schema) : {},
  };
  const version = options.schemaVersion;
  if (version) {
    if (version.name) message.title = version.name;
    message['x-jetstream-schema'] = {
      ...(version.name ? { name: version.name } : {}),
      version: version.version,
      accepts: acceptedVersions(version.version, version.upcast ?? {}),
    };
  }
  return message;
}

/** The versions with an unbroken upcaster chain to the handler's own, oldest first. */
function acceptedVersions(version: number, upcast: Readonly<Record<number, unknown>>): number[] {
  const accepted = [version];
  for (let from = version - 1; from >= 1 && upcast[from] !== undefined; from--) accepted.unshift(from);
  return accepted;
}

function payloadSchema(schema: StandardSchemaV1): JsonSchema {
  const converter = (schema['~standard'] as { jsonSchema?: JsonSchemaConverter }).jsonSchema;
  const vendor = schema['~standard'].vendor;
  if (converter && typeof converter.input === 'function') {
    try {
      const { $schema: _dialect, ...rest } = converter.input({ target: 'draft-07' });
      return rest as JsonSchema;
    } catch (err) {
      return { description: `Validated by a ${vendor} schema that has no JSON Schema form (${(err as Error).message})` };
    }
  }
  return { description: `Validated by a ${vendor} schema; ${vendor} offers no Standard JSON Schema, so the shape is not listed here` };
}
