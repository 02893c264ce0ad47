import { nuid } from '@nats-io/transport-node';
import type { SqlRunner } from '../database/database-adapter.js';
import { InvalidOptionsError, PayloadTooLargeError } from '../errors/jetstream-errors.js';
import { assertPublishSubject } from '../options/subject-validation.js';
import { encodePayload } from '../serialization/codec.js';
import type { ResolvedOutboxOptions } from './outbox-options.js';
import { outboxSql, type OutboxSql } from './outbox-sql.js';

export interface OutboxPublishOptions {
  /**
   * The event's id: the row's primary key and the `Nats-Msg-Id` the relay publishes with, so the
   * stream drops a republish. Use a business key (an order id) to make the whole operation
   * idempotent: a second `publish` with the same id in any transaction records nothing.
   * Default: a fresh unique id.
   */
  msgId?: string;
  /**
   * Aggregate key: events of one key reach the stream in the order their transactions
   * committed; events of different keys go in parallel. Publishing a keyed event locks the key
   * until the transaction ends, so concurrent writers of one key take turns.
   */
  key?: string;
  headers?: Record<string, string | readonly string[]>;
}

export interface OutboxPublishResult {
  readonly msgId: string;
  /** False when a row with this msgId already existed: nothing new was recorded. */
  readonly recorded: boolean;
}

/** A header name NATS accepts: printable ASCII without ':' and whitespace. */
const HEADER_NAME = /^[!-9;-~]+$/;
const MAX_ID = 1024;

/**
 * Records events in the caller's database transaction; the relay publishes them once the
 * transaction has committed, and never if it rolled back.
 *
 * ```ts
 * await db.transaction(async (sql, tx) => {
 *   await sql.query('INSERT INTO orders ...', [...]);
 *   await this.outbox.publish(tx, 'orders.created', order, { msgId: order.id, key: order.customerId });
 * });
 * ```
 *
 * Bad input (an invalid subject, a payload that cannot be encoded or is larger than the server
 * accepts, a malformed option) throws before anything is written, so the caller's transaction
 * rolls back with a clear error rather than committing an event that can never be published.
 */
export class JetStreamOutbox<Tx = unknown> {
  private readonly sql: OutboxSql;

  constructor(
    private readonly options: ResolvedOutboxOptions<Tx>,
    /** The server's max_payload when known, to refuse an oversized event before commit. */
    private readonly maxPayload: () => number | undefined = () => undefined,
  ) {
    this.sql = outboxSql(options.table, options.channel);
  }

  get table(): string {
    return this.options.table.name;
  }

  async publish<T>(tx: Tx, subject: string, payload: T, options: OutboxPublishOptions = {}): Promise<OutboxPublishResult> {
    assertPublishSubject(subject);
    const data = encodePayload(payload);
    const msgId = options.msgId ?? nuid.next();
    checkId(msgId, 'msgId');
    if (options.key !== undefined) checkId(options.key, 'key');
    const headers = options.headers === undefined ? null : normalizeHeaders(options.headers);
    const limit = this.maxPayload();
    // Headers travel in the same message; a rough count keeps the check on the safe side.
    const bytes = data.length + (headers ? JSON.stringify(headers).length : 0);
    if (limit !== undefined && bytes > limit) throw new PayloadTooLargeError(subject, bytes, limit);
    const runner: SqlRunner = this.options.database.inTransaction(tx);
    const params: unknown[] = [msgId, subject, data, headers === null ? null : JSON.stringify(headers)];
    const rows = options.key === undefined
      ? await runner.query<{ inserted: string | number }>(this.sql.insert, params)
      : await runner.query<{ inserted: string | number }>(this.sql.insertKeyed, [...params, options.key]);
    return { msgId, recorded: Number(rows[0]?.inserted ?? 0) > 0 };
  }
}

function checkId(value: unknown, name: string): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ID) {
    throw new InvalidOptionsError(`outbox.publish: ${name} must be a non-empty string of at most ${MAX_ID} characters, got ${JSON.stringify(value)}`);
  }
}

function normalizeHeaders(headers: unknown): Record<string, string[]> {
  if (!headers || typeof headers !== 'object' || Array.isArray(headers)) {
    throw new InvalidOptionsError('outbox.publish: headers must be an object of header name to string or string[]');
  }
  const out: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!HEADER_NAME.test(name)) throw new InvalidOptionsError(`outbox.publish: invalid header name ${JSON.stringify(name)}`);
    // The relay sets Nats-Msg-Id from msgId; a second one would contradict it.
    if (name.toLowerCase() === 'nats-msg-id') throw new InvalidOptionsError('outbox.publish: set the message id with the msgId option, not a Nats-Msg-Id header');
    const values = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(values) || values.some((v) => typeof v !== 'string' || /[\r\n]/.test(v))) {
      throw new InvalidOptionsError(`outbox.publish: header ${JSON.stringify(name)} must be a string or string[] without line breaks`);
    }
    out[name] = [...(values as string[])];
  }
  return out;
}
