import { InvalidOptionsError } from '../errors/jetstream-errors.js';

// Unquoted PostgreSQL identifiers, optionally schema-qualified: what a user types in psql, and
// never a place where SQL could be smuggled in (table names are spliced into statements).
const NAME = /^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$/;

/** A validated table name, with the forms the SQL needs. */
export interface TableName {
  /** As configured, e.g. `billing.jetstream_outbox`. */
  readonly name: string;
  /** Quoted for splicing into SQL: `"billing"."jetstream_outbox"`. */
  readonly sql: string;
  /** The bare table part, for index and channel names. */
  readonly base: string;
  /** The schema part, when qualified. */
  readonly schema: string | undefined;
}

export function tableName(name: unknown, option: string): TableName {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new InvalidOptionsError(
      `${option} must be a lowercase PostgreSQL table name, optionally schema-qualified (e.g. "jetstream_outbox" or "billing.jetstream_outbox"), got ${JSON.stringify(name)}`,
    );
  }
  const [schema, base] = name.includes('.') ? name.split('.') : [undefined, name];
  return { name, sql: schema ? `"${schema}"."${base}"` : `"${base}"`, base, schema };
}

/**
 * A name derived from a table (an index, a NOTIFY channel), kept within PostgreSQL's 63 bytes:
 * a long table name is cut and given a short hash so two long names stay apart.
 */
export function derivedName(table: TableName, suffix: string): string {
  const full = `${table.name.replace('.', '_')}_${suffix}`;
  if (full.length <= 63) return full;
  let hash = 0;
  for (const ch of full) hash = (Math.imul(hash, 31) + ch.charCodeAt(0)) >>> 0;
  const tag = hash.toString(36);
  return `${full.slice(0, 62 - tag.length - suffix.length - 1)}_${tag}_${suffix}`;
}
