// The PostgreSQL guard's rules on tables against code the server runs: the server resolves the names
// in a body when it runs, so a table with rules must not get another name the guard did not see made
// (a view, a child, a rule), code over an existing other name is judged by what it reaches, and code
// is followed into aggregates' support functions and refused past the depth the guard reads. Real
// PostgreSQL behind a real `chaperone sidecar`; the agent is psql. Every attempt targets its own row
// of orders, and the row must still be there after it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type GuardedDatabase,
  orderKept as harnessOrderKept,
  noDropPolicy,
  psqlAsAgent,
  startGuardedDatabase,
  TABLE_RULES,
} from './sidecar-postgres-harness.ts';

const POLICY = noDropPolicy('tables-more', TABLE_RULES);

let db: GuardedDatabase;

const psql = (...sql: string[]) => psqlAsAgent(db, ...sql);

const orderKept = (id: number) => harnessOrderKept(db, id);

const zapBody = (returns: string, ret: string, id: string) =>
  `RETURNS ${returns} LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t_late WHERE id = ${id}; RETURN ${ret}; END $$`;

before(async () => {
  db = await startGuardedDatabase({
    name: 'pg-tables-more',
    pod: 'agent-tables-more',
    policy: POLICY,
    setup: async (c) => {
      // The application's: views over the protected tables, and code an administrator made that reaches
      // orders through one of them (an aggregate's transition function; functions four calls deep).
      await c.query(`
        CREATE TABLE orders (id int PRIMARY KEY, note text);
        INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 30) g;
        CREATE TABLE ledger (id int, amount int);
        INSERT INTO ledger VALUES (1, 424242);
        CREATE VIEW t_late AS SELECT * FROM orders;
        CREATE VIEW t_ledger AS SELECT * FROM ledger;
        CREATE FUNCTION zap_step(s int, v int) ${zapBody('int', 'coalesce(s, 0) + 1', 'v')};
        CREATE AGGREGATE agg_zap(int) (SFUNC = zap_step, STYPE = int);
        CREATE FUNCTION d4(i int) ${zapBody('bool', 'true', 'i')};
        CREATE FUNCTION d3(i int) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN RETURN d4(i); END $$;
        CREATE FUNCTION d2(i int) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN RETURN d3(i); END $$;
        CREATE FUNCTION d1(i int) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN RETURN d2(i); END $$;
      `);
    },
  });
});

after(async () => await db?.stop());

describe('PostgreSQL guard: code the server runs reaching a table with rules', () => {
  // Fails without the built-in rule chaperone-sql-no-new-names (session.ts #newName): a view, a child
  // or a rule the agent makes would be another name for orders, which code it made earlier (a
  // function behind an operator, a cast, a domain, a default, an index, a policy) could reach where
  // the guard does not look, since the server resolves a body's names when it runs.
  it('refuses a definition that gives a table with rules another name', () => {
    for (const sql of [
      'CREATE VIEW t_new AS SELECT * FROM orders',
      'CREATE TABLE o_child () INHERITS (orders)',
      'CREATE TABLE o_rules (id int)',
      'CREATE RULE r_del AS ON DELETE TO o_rules DO INSTEAD DELETE FROM orders WHERE id = OLD.id',
    ]) {
      const r = psql(sql);
      if (sql.startsWith('CREATE TABLE o_rules')) {
        assert.equal(r.code, 0, r.stderr);
        continue;
      }
      assert.match(r.stderr, /42501/, `${sql}: ${r.all}`);
      // The rule's action deletes from orders: keep-orders refuses it first.
      if (!sql.startsWith('CREATE RULE')) assert.match(r.stderr, /chaperone-sql-no-new-names/, sql);
    }
  });

  // Fails if code were judged by the names it uses as they stood: made after t_late became a view over
  // orders, a function deleting from t_late is a delete of orders, and one reading t_ledger a read of
  // ledger (session.ts #afterCatalog on the CREATE FUNCTION's body).
  it('refuses code whose body reaches a table with rules through another name', () => {
    for (const sql of [
      `CREATE FUNCTION zap(i int) ${zapBody('bool', 'true', 'i')}`,
      "CREATE FUNCTION peek(a int, b int) RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT string_agg(amount::text, ',') FROM t_ledger); END $$",
    ]) {
      const r = psql(sql);
      assert.match(r.stderr, /42501/, `${sql}: ${r.all}`);
    }
  });

  // Fails without reading an aggregate's support functions, or with calls deeper than the guard reads
  // allowed (session.ts #reachOf): an administrator's aggregate and a chain of four functions delete
  // from orders through t_late.
  for (const [how, id, sql] of [
    ["an aggregate's transition function", 18, 'SELECT agg_zap(18)'],
    ['functions nested four deep', 19, 'SELECT d1(19)'],
  ] as const) {
    it(`denies a DELETE of orders run by ${how}`, async () => {
      const r = psql(sql);
      assert.match(r.stderr, /42501/, `${sql}: ${r.all}`);
      assert.ok(await orderKept(id), `row ${id} of orders was deleted by ${sql}`);
    });
  }

  // Fails without chaperone-sql-no-new-names: a function and a view over orders made in one string, and
  // the function called, would delete a row of orders.
  it('denies a call of a function made earlier in the same query string', async () => {
    const r = psql(
      `CREATE FUNCTION f_same(i int) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t_same WHERE id = i; RETURN true; END $$;
       CREATE VIEW t_same AS SELECT * FROM orders;
       SELECT f_same(20)`,
    );
    assert.match(r.stderr, /42501/, r.all);
    assert.ok(await orderKept(20), 'row 20 of orders was deleted');
  });
});
