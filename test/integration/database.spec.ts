import { ensureSchema, inboxDdl, outboxDdl, tableName } from '../../lib/index.js';
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

  it('runs a first statement in the round trip of BEGIN: values read back exactly, commit and rollback as in transaction()', async () => {
    const start = t.db.transactionStartingWith!.bind(t.db);
    const table = `"${t.schema}".firsts`;
    await t.db.query(`CREATE TABLE ${table} (v text PRIMARY KEY, n integer)`);
    // Quotes, backslashes, a doubled-quote escape attempt, non-ASCII: each must arrive as itself.
    const values = ["it's", 'costs $2 or $1', 'back\\slash\\', "'); DROP TABLE x; --", 'E\'\\\'', 'ünïcode ✓'];
    for (const v of values) {
      const rows = await start<{ v: string; n: number }, string>({ sql: `INSERT INTO ${table} (v, n) VALUES ($1, $2) RETURNING v, n`, params: [v, 7] }, async (first, sql) => {
        await sql.query(`UPDATE ${table} SET n = n + 1 WHERE v = $1`, [v]);
        return first[0].v;
      });
      expect(rows).toBe(v);
    }
    const stored = await t.db.query<{ v: string; n: number }>(`SELECT v, n FROM ${table}`);
    expect(stored.map((r) => r.v).sort()).toEqual([...values].sort());
    expect(stored.map((r) => r.n)).toEqual(values.map(() => 8));
    // The work throws: the first statement's row goes with it.
    await expect(
      start({ sql: `INSERT INTO ${table} (v) VALUES ($1)`, params: ['rolled back'] }, async () => {
        throw new Error('handler failed');
      }),
    ).rejects.toThrow('handler failed');
    // The first statement fails: the error reaches the caller, and the connection is fit for the next.
    await expect(start({ sql: `INSERT INTO ${table} (v, n) VALUES ($1, $2)`, params: ["it's", 1] }, async () => 'never')).rejects.toThrow(/duplicate key/);
    // A value with no literal form (a Buffer) goes as a parameter, in a round trip of its own.
    await start({ sql: `INSERT INTO ${table} (v) VALUES (encode($1::bytea, 'hex'))`, params: [Buffer.from('ab')] }, async () => undefined);
    const after = await t.db.query<{ v: string }>(`SELECT v FROM ${table} WHERE n IS NULL OR v = 'rolled back'`);
    expect(after).toEqual([{ v: '6162' }]);
  });
});
