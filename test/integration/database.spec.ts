import { ensureSchema, inboxDdl, outboxDdl, tableName, TransactionRolledBackError } from '../../lib/index.js';
import { waitFor } from '../harness/index.js';
import { openTestDatabase, type TestDatabase } from '../support/test-database.js';

// The database layer on whichever database the run has: DATABASE_URL's server, else PGlite.
describe('database layer', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await openTestDatabase('dblayer');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('creates the outbox and inbox tables idempotently, under configured names', async () => {
    const outbox = tableName(t.table('my_outbox'), 'outbox.table');
    const inbox = tableName(t.table('my_inbox'), 'inbox.table');
    const statements = [...outboxDdl(outbox), ...inboxDdl(inbox)];
    await Promise.all([ensureSchema(t.db.transaction, statements), ensureSchema(t.db.transaction, statements)]);
    const rows = await t.db.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
      [t.schema],
    );
    expect(rows.map((r) => r.table_name)).toEqual(['my_inbox', 'my_outbox']);
  });

  it('refuses a table name that is not a plain identifier', () => {
    expect(() => tableName('x; DROP TABLE y', 'outbox.table')).toThrow(/outbox.table must be a lowercase PostgreSQL table name/);
    expect(() => tableName('A.b.c', 'inbox.table')).toThrow(/inbox.table/);
  });

  it('commits a transaction when the work resolves and rolls it back when it throws', async () => {
    await t.db.query(`CREATE TABLE "${t.schema}".notes (v text)`);
    await t.db.transaction((sql) => sql.query(`INSERT INTO "${t.schema}".notes VALUES ('kept')`));
    await expect(
      t.db.transaction(async (sql) => {
        await sql.query(`INSERT INTO "${t.schema}".notes VALUES ('lost')`);
        throw new Error('business rule failed');
      }),
    ).rejects.toThrow('business rule failed');
    // The user's own handle runs in the same transaction as the module's runner.
    await t.db.transaction(async (_sql, tx) => {
      await (t.db.inTransaction as (tx: unknown) => { query(s: string): Promise<unknown> })(tx).query(
        `INSERT INTO "${t.schema}".notes VALUES ('via handle')`,
      );
    });
    const rows = await t.db.query<{ v: string }>(`SELECT v FROM "${t.schema}".notes ORDER BY v`);
    expect(rows.map((r) => r.v)).toEqual(['kept', 'via handle']);
  });

  it('delivers a NOTIFY to a listener once the sending transaction commits', async () => {
    const channel = `${t.schema}_ch`;
    let notified = 0;
    const listening = await t.db.listen(channel, () => notified++, () => undefined);
    await t.db.transaction(async (sql) => {
      await sql.query(`SELECT pg_notify($1, '')`, [channel]);
    });
    await waitFor(() => notified === 1, { timeoutMs: 10_000, message: 'the notification' });
    await listening.close();
  });

  it('sends several statements with BEGIN in one round trip, text arrays inlined; a COMMIT that rolled back is an error', async () => {
    const table = `"${t.schema}".scripts`;
    await t.db.query(`CREATE TABLE ${table} (v text PRIMARY KEY)`);
    const keys = ["a'b", 'c\\d', 'e'];
    const got = await t.db.transaction(
      async (sql, _tx, firstRows) => {
        // The rows of the last statement of `first`.
        expect(firstRows?.map((r) => r.v).sort()).toEqual([...keys].sort());
        const seen = await sql.query(`SELECT v FROM ${table} WHERE v = ANY($1::text[]) ORDER BY v`, [['e', "a'b"]]);
        const none = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE v = ANY($1::text[])`, [[]]);
        return [seen.length, none[0].n];
      },
      [
        { sql: 'SELECT 1', params: [] },
        { sql: `INSERT INTO ${table} (v) SELECT unnest($1::text[]) RETURNING v`, params: [keys] },
      ],
    );
    expect(got).toEqual([2, 0]);
    const committed = await t.db.query<{ v: string }>(`SELECT v FROM ${table} ORDER BY v`);
    expect(committed.map((r) => r.v)).toEqual([...keys].sort());
    if (t.kind === 'pg') {
      // A statement failed and the work went on: PostgreSQL answers the COMMIT with ROLLBACK.
      await expect(
        t.db.transaction(async (sql) => {
          await sql.query(`INSERT INTO ${table} (v) VALUES ('lost')`);
          await sql.query('SELECT * FROM no_such_table').catch(() => undefined);
        }),
      ).rejects.toThrow(TransactionRolledBackError);
      expect(await t.db.query(`SELECT v FROM ${table} WHERE v = 'lost'`)).toEqual([]);
    }
  });

  it('sends a first statement with BEGIN and hands back its rows: values read back exactly, commit and rollback as without it', async () => {
    type Work = (sql: { query(s: string, p?: unknown[]): Promise<unknown[]> }, tx: unknown, firstRows?: Array<Record<string, unknown>>) => Promise<unknown>;
    const transaction = t.db.transaction as (work: Work, first?: { sql: string; params: unknown[] }) => Promise<unknown>;
    const table = `"${t.schema}".firsts`;
    await t.db.query(`CREATE TABLE ${table} (v text PRIMARY KEY, n integer)`);
    // Quotes, backslashes, placeholders, an escape attempt, non-ASCII: each must arrive as itself.
    const values = ["it's", 'costs $2 or $1', 'back\\slash\\', "'); DROP TABLE x; --", 'E\'\\\'', 'ünïcode ✓'];
    for (const v of values) {
      const got = await transaction(
        async (sql, _tx, firstRows) => {
          // Both adapters take the one-round-trip path for strings and numbers.
          expect(firstRows).toEqual([{ v, n: 7 }]);
          await sql.query(`UPDATE ${table} SET n = n + 1 WHERE v = $1`, [v]);
          return firstRows![0].v;
        },
        { sql: `INSERT INTO ${table} (v, n) VALUES ($1, $2) RETURNING v, n`, params: [v, 7] },
      );
      expect(got).toBe(v);
    }
    const stored = await t.db.query<{ v: string; n: number }>(`SELECT v, n FROM ${table}`);
    expect(stored.map((r) => r.v).sort()).toEqual([...values].sort());
    expect(stored.map((r) => r.n)).toEqual(values.map(() => 8));
    // The work throws: the first statement's row goes with it.
    await expect(
      transaction(async () => {
        throw new Error('handler failed');
      }, { sql: `INSERT INTO ${table} (v) VALUES ($1)`, params: ['rolled back'] }),
    ).rejects.toThrow('handler failed');
    // The first statement fails: the error reaches the caller, and the connection is fit for the next.
    await expect(transaction(async () => 'never', { sql: `INSERT INTO ${table} (v, n) VALUES ($1, $2)`, params: ["it's", 1] })).rejects.toThrow(/duplicate key/);
    // A value with no literal form (a Buffer): no first rows, the caller runs the statement itself.
    await transaction(
      async (sql, _tx, firstRows) => {
        expect(firstRows).toBeUndefined();
        await sql.query(`INSERT INTO ${table} (v) VALUES (encode($1::bytea, 'hex'))`, [Buffer.from('ab')]);
      },
      { sql: 'SELECT $1::bytea', params: [Buffer.from('ab')] },
    );
    const after = await t.db.query<{ v: string }>(`SELECT v FROM ${table} WHERE n IS NULL OR v = 'rolled back'`);
    expect(after).toEqual([{ v: '6162' }]);
  });
});
