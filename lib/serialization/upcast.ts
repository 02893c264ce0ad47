import type { MsgHdrs } from '@nats-io/transport-node';
import { UnsupportedSchemaError } from '../errors/jetstream-errors.js';
import type { SchemaVersionOptions } from '../decorators/on-event-options.js';
import { SCHEMA_NAME_HEADER, SCHEMA_VERSION_HEADER } from '../wire/schema-headers.js';
import { headerOf } from './message-headers.js';

/** Brings a decoded payload from the version its message was stamped with to the handler's. */
export interface VersionUpcaster {
  upcast(payload: unknown, headers: MsgHdrs | undefined): unknown;
}

type Step = (older: unknown) => unknown;

/**
 * Built once per handler. A message without a version header counts as the handler's own
 * version (producers that predate versioning); any other version needs an unbroken chain of
 * upcasters, or the message is refused rather than mis-parsed.
 */
export function createUpcaster(options: SchemaVersionOptions): VersionUpcaster {
  const { name, version } = options;
  const steps = new Map<number, Step>();
  for (const [from, step] of Object.entries(options.upcast ?? {})) steps.set(Number(from), step as Step);
  return {
    upcast(payload, headers) {
      if (!headers) return payload;
      const stampedName = headerOf(headers, SCHEMA_NAME_HEADER);
      if (name !== undefined && stampedName !== undefined && stampedName !== name) {
        throw new UnsupportedSchemaError(`Message has schema "${stampedName}", the handler reads "${name}"`);
      }
      const stamped = headerOf(headers, SCHEMA_VERSION_HEADER);
      if (stamped === undefined) return payload;
      const from = /^[1-9]\d{0,8}$/.test(stamped) ? Number(stamped) : NaN;
      if (Number.isNaN(from)) throw new UnsupportedSchemaError(`Message has schema version "${stamped}", not a positive integer`);
      if (from > version) {
        throw new UnsupportedSchemaError(`Message has schema${label(stampedName ?? name)} version ${from}, newer than the handler's version ${version}`);
      }
      let value = payload;
      for (let at = from; at < version; at++) {
        const step = steps.get(at);
        if (!step) {
          throw new UnsupportedSchemaError(`Message has schema${label(stampedName ?? name)} version ${from}; the handler reads version ${version} and has no upcaster from version ${at}`);
        }
        value = step(value);
      }
      return value;
    },
  };
}

function label(name: string | undefined): string {
  return name === undefined ? '' : ` "${name}"`;
}
