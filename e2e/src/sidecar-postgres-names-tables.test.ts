// The PostgreSQL guard's rules on tables where the catalog the sidecar reads on its own connection
// and the server the agent talks to see different relations under one name: a view made in the
// same query string or in the agent's open transaction, a temporary view named through `pg_temp`,
// a view made after a function naming it, a view made outside the guard while a session is open,
// and a prepared statement bound again after its view was replaced. Real PostgreSQL behind a real
// `chaperone sidecar`; the agent is psql or node-postgres. Every attempt targets its own row of
// orders, and the row must still be there after it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import {
  type GuardedDatabase,
  orderKept as harnessOrderKept,
  noDropPolicy,
  psqlAsAgent,
  startGuardedDatabase,
  TABLE_RULES,
} from './sidecar-postgres-harness.ts';

const CANARY = 'canary-names-tables-81c4e2';
const POLICY = noDropPolicy(
  'names-tables',
  `    - { name: mask-passwords, match: { sql: { tables: [users], columns: [password] } }, action: mask }
${TABLE_RULES}`,
);

let db: GuardedDatabase;
const CATALOG_TTL_MS = 1000;

const psql = (...sql: string[]) => psqlAsAgent(db, ...sql);

function agent(): pg.Client {
  return new pg.Client({ host: '127.0.0.1', port: db.port, database: 'app', user: 'agent' });
}

const orderKept = (id: number) => harnessOrderKept(db, id);

before(async () => {
  db = await startGuardedDatabase({
    name: 'pg-names-tables',
    pod: 'agent-names-tables',
    policy: POLICY,
    // Changes made outside the guard are seen after this (the last test waits for it).
    extraArgs: ['--database-catalog-ttl', `${CATALOG_TTL_MS}ms`],
    setup: async (c) => {
      await c.query(`
        CREATE TABLE orders (id int PRIMARY KEY, note text);
        INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 9) g;
        CREATE TABLE spare (id int PRIMARY KEY, note text);
        CREATE VIEW t_swap AS SELECT * FROM spare;
        CREATE TABLE ledger (id int, amount int);
        INSERT INTO ledger VALUES (1, 100);
        CREATE TABLE users (id int PRIMARY KEY, password text);
        INSERT INTO users VALUES (1, '${CANARY}');
      `);
    },
  });
});

after(async () => await db?.stop());

describe('PostgreSQL guard: a denied table behind a name the catalog cannot see yet', () => {
  // Fails if a view over orders could be made: every name of a query string is looked up before any
  // of it runs, so t_same does not exist yet, and the server would make the view and delete the row.
  it('denies a DELETE through a view made earlier in the same query string', async () => {
    const r = psql('CREATE VIEW t_same AS SELECT * FROM orders; DELETE FROM t_same WHERE id = 2');
    assert.match(r.stderr, /42501/, r.stdout);
    assert.match(r.stderr, /chaperone-sql-no-new-names/);
    assert.ok(await orderKept(2), 'row 2 of orders was deleted');
  });

  // Fails if a view over orders could be made in the agent's open transaction: the catalog connection
  // reads committed rows only, and the view would be invisible to it.
  it("denies a DELETE through a view made in the agent's open transaction", async () => {
    const r = psql(
      'BEGIN',
      'CREATE VIEW t_open AS SELECT * FROM orders',
      'DELETE FROM t_open WHERE id = 3',
      'COMMIT',
    );
    assert.match(r.stderr, /42501/, r.stdout);
    assert.ok(await orderKept(3), 'row 3 of orders was deleted');
  });

  // Fails if a temporary view over orders could be made: `pg_temp.t_tmp` would then reach orders
  // under a schema name the catalog connection does not have (pg_temp_N).
  it('denies a DELETE through a temporary view named pg_temp.<view>', async () => {
    const r = psql(
      'CREATE TEMP VIEW t_tmp AS SELECT * FROM orders',
      'DELETE FROM t_tmp WHERE id = 4',
      'DELETE FROM pg_temp.t_tmp WHERE id = 4',
    );
    assert.match(r.stderr, /chaperone-sql-no-new-names/, r.all);
    assert.ok(await orderKept(4), 'row 4 of orders was deleted');
  });
});

describe('PostgreSQL guard: a denied table behind a name bound after it was judged', () => {
  // Fails if the name a function's body uses could become a view over orders after the function was
  // judged (it was made when t_late did not exist): the server resolves a body's names at each call,
  // and the call names no table at all.
  it('denies a call of a function whose table became a view over a denied table', async () => {
    const made = psql(
      'CREATE FUNCTION purge(i int) RETURNS void LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t_late WHERE id = i; END $$',
    );
    assert.equal(made.code, 0, made.stderr);
    const view = psql('CREATE VIEW t_late AS SELECT * FROM orders');
    assert.match(view.stderr, /chaperone-sql-no-new-names/, view.all);
    const r = psql('SELECT purge(5)');
    assert.notEqual(r.code, 0, r.stdout);
    assert.ok(await orderKept(5), 'row 5 of orders was deleted');
  });

  // Fails if the view a prepared statement names could be replaced by one over orders (the Bind after
  // it would delete from orders).
  it('denies a Bind of a prepared DELETE after its view was replaced by one over orders', async () => {
    const c = agent();
    await c.connect();
    try {
      const del = { name: 'del_swap', text: 'DELETE FROM t_swap WHERE id = $1', values: [6] };
      await c.query(del);
      await assert.rejects(
        c.query('CREATE OR REPLACE VIEW t_swap AS SELECT * FROM orders'),
        /would give orders, which rule "keep-orders" names, another name/,
      );
      await c.query(del);
    } finally {
      await c.end();
    }
    assert.ok(await orderKept(6), 'row 6 of orders was deleted');
  });

  // Fails if what a session learnt a name reaches (session.ts #reachedBy) were kept until a statement
  // through the guard invalidates the catalog: a view made outside the guard (a migration) would not
  // be seen by a session that looked its name up before, however long after.
  it('denies a read through a view made outside the guard once the catalog cache has expired', async () => {
    const c = agent();
    await c.connect();
    try {
      await assert.rejects(c.query('SELECT count(*) FROM t_outside'), /does not exist/);
      await db.direct((d) => d.query('CREATE VIEW t_outside AS SELECT * FROM ledger'));
      await sleep(CATALOG_TTL_MS * 1.5); // past the catalog's trust (--database-catalog-ttl)
      await assert.rejects(c.query('SELECT amount FROM t_outside'), /The ledger is closed\./);
    } finally {
      await c.end();
    }
  });

  // Fails if an allow of a statement that names a function and no table were kept for the session
  // (session.ts #keptAllow): what the function's body reaches is read from the catalog too, and the
  // same text, or the same prepared statement, would run the body rewritten to read the ledger.
  it('denies a call, by the same text and prepared, once the function was rewritten outside the guard to read a denied table', async () => {
    await db.direct((d) =>
      d.query(
        'CREATE FUNCTION spare_amount() RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT count(*) FROM spare); END $$',
      ),
    );
    const c = agent();
    await c.connect();
    try {
      const call = { name: 'call_spare', text: 'SELECT spare_amount() AS n' };
      assert.equal((await c.query('SELECT spare_amount() AS n')).rows.length, 1);
      assert.equal((await c.query(call)).rows.length, 1);
      await db.direct((d) =>
        d.query(
          'CREATE OR REPLACE FUNCTION spare_amount() RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT sum(amount) FROM ledger); END $$',
        ),
      );
      await sleep(CATALOG_TTL_MS * 1.5); // past the catalog's trust (--database-catalog-ttl)
      await assert.rejects(c.query('SELECT spare_amount() AS n'), /The ledger is closed\./);
      await assert.rejects(c.query(call), /The ledger is closed\./);
    } finally {
      await c.end();
    }
  });
});

describe('PostgreSQL guard: masked values leaving by a notification', () => {
  // Fails if a masked column given to pg_notify (an expression over it) were allowed: the payload
  // would carry it.
  it('denies pg_notify of a masked column', () => {
    const r = psql('LISTEN c', "SELECT pg_notify('c', password) FROM users");
    assert.match(r.stderr, /42501: column "password" of masked table users/, r.stdout);
    assert.doesNotMatch(r.all, new RegExp(CANARY));
  });
});
