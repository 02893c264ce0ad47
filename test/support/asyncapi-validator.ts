import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';

/**
 * The official AsyncAPI 3.0.0 JSON Schema (`@asyncapi/specs`), compiled once. The variant
 * without `$id`s keeps every reference local to the file, so Ajv needs no other schema loaded.
 */
const require = createRequire(import.meta.url);
const schemaPath = require.resolve('@asyncapi/specs/schemas/3.0.0-without-$id.json');

// ajv-formats is CommonJS: under ESM its default export may arrive wrapped once more.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv;

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (compiled) return compiled;
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  compiled = ajv.compile(JSON.parse(readFileSync(schemaPath, 'utf8')) as object);
  return compiled;
}

/** Validation errors of a document against the AsyncAPI 3.0.0 schema, one readable line each; empty when valid. */
export function asyncApiSchemaErrors(document: unknown): string[] {
  const validate = validator();
  if (validate(document)) return [];
  return (validate.errors ?? []).map(describe);
}

function describe(error: ErrorObject): string {
  return `${error.instancePath || '/'} ${error.message ?? error.keyword} ${JSON.stringify(error.params)} (schema ${error.schemaPath})`;
}
