// Which statements masking can answer and which it must deny, read from real parse trees
// (the sidecar's classifier: libpg-query) under masks on users.password and on every column of
// billing.cards. Each "denied" row fails if mask-facts.ts counted that use as a plain output
// column (or missed it), each "masked" row if a plain output column were counted as derived.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { masksOfWrittenTable } from '@chaperone/shared';
import { isQueryFunction, maskDenial } from './mask-check.ts';
import { SqlClassifier } from './sql-classifier.ts';
import { masksOf } from './test-masks.ts';

const masks = masksOf(`
    - name: mask-passwords
      match: { sql: { tables: [users], columns: [password] } }
      action: mask
    - name: mask-cards
      match: { sql: { tables: [billing.cards] } }
      action: mask
`);

let classifier: SqlClassifier;
before(async () => {
  classifier = await SqlClassifier.create();
});

function denial(sql: string): string | undefined {
  const [c] = classifier.classify(sql).statements;
  assert.ok(c, sql);
  return maskDenial(c.mask, c.statement.functions ?? [], masks, (r) => ({
    masks: masksOfWrittenTable(masks, r),
  }));
}

// [statement, expected: 'masked' (runs, plain output columns get masked) or a pattern of the denial]
const table: [string, 'masked' | RegExp][] = [
  ['SELECT password FROM users', 'masked'],
  ['SELECT u.password, u.id FROM users u WHERE u.id = 1', 'masked'],
  ['SELECT * FROM users', 'masked'],
  ['SELECT u.* FROM users u JOIN orders o ON o.user_id = u.id', 'masked'],
  ['SELECT public.users.password FROM public.users', 'masked'],
  ['TABLE users', 'masked'],
  ['SELECT password FROM users ORDER BY id LIMIT 3', 'masked'],
  ['UPDATE users SET name = $1 WHERE id = $2 RETURNING password', 'masked'],
  ['INSERT INTO users (id, password) VALUES (1, $1) RETURNING *', 'masked'],
  ['DELETE FROM users WHERE id = 1 RETURNING id, password', 'masked'],
  ['UPDATE users SET password = $1 WHERE id = 1', 'masked'],
  ['DECLARE c CURSOR FOR SELECT password FROM users', 'masked'],
  ['PREPARE p AS SELECT password FROM users WHERE id = $1', 'masked'],
  ['COPY users TO STDOUT', 'masked'],
  ['COPY users (id, password) TO STDOUT WITH (FORMAT csv)', 'masked'],
  ['SELECT o.note FROM orders o WHERE o.password = 1', 'masked'],
  ['SELECT id FROM users u WHERE u.name = $1', 'masked'],
  ['SELECT count(*) FROM users', 'masked'],
  ['DROP TABLE users', 'masked'],
  ['TRUNCATE users', 'masked'],
  ['SELECT md5(password) FROM users', /column "password" of masked table users/],
  ['SELECT password::text FROM users', /column "password"/],
  ["SELECT password || '' FROM users", /column "password"/],
  ["SELECT id FROM users WHERE password LIKE 'a%'", /column "password"/],
  ['SELECT id FROM users ORDER BY password', /column "password"/],
  ['SELECT password AS p FROM users ORDER BY p', /column "password"/],
  ['SELECT password FROM users ORDER BY 1', /column "password"/],
  ['SELECT password FROM users GROUP BY password', /column "password"/],
  ['SELECT DISTINCT password FROM users', /column "password"/],
  ["SELECT string_agg(password, ',') FROM users", /column "password"/],
  ['SELECT row_to_json(u) FROM users u', /every column of masked table users/],
  ['SELECT u FROM users u', /every column of masked table users/],
  ['SELECT (u).password FROM users u', /every column of masked table users/],
  ['SELECT to_json(users.*) FROM users', /every column of masked table users/],
  ['SELECT * FROM (SELECT password FROM users) s', /column "password"/],
  ['SELECT * FROM (SELECT * FROM users) s', /every column/],
  ['WITH c AS (SELECT password FROM users) SELECT * FROM c', /column "password"/],
  ['SELECT password FROM users UNION SELECT name FROM users', /column "password"/],
  ['SELECT id FROM users WHERE EXISTS (SELECT 1 FROM users x WHERE x.password = $1)', /column "password"/],
  ['SELECT id FROM users JOIN guesses USING (password)', /column "password"/],
  ['SELECT id FROM users NATURAL JOIN guesses', /every column/],
  ['INSERT INTO copy SELECT password FROM users', /column "password"/],
  ['CREATE TABLE copy AS SELECT password FROM users', /column "password"/],
  ['SELECT password INTO copy FROM users', /column "password"/],
  ['CREATE VIEW v AS SELECT password FROM users', /column "password"/],
  ['UPDATE users SET name = password', /column "password"/],
  ['COPY (SELECT password FROM users) TO STDOUT', /column "password"/],
  ['COPY (SELECT * FROM users) TO STDOUT', /every column/],
  ["COPY users TO '/tmp/users.txt'", /to a server file/],
  ["COPY users TO PROGRAM 'cat'", /to a server program/],
  ['EXPLAIN ANALYZE SELECT id FROM users WHERE password = $1', /column "password"/],
  ['INSERT INTO users (id, password) VALUES (1, $1) ON CONFLICT (password) DO NOTHING', /column "password"/],
  ['SELECT id FROM users WHERE id IN (SELECT length(password) FROM users)', /column "password"/],
  ['SELECT number FROM billing.cards WHERE number = $1', /column "number" of masked table billing\.cards/],
  ['SELECT holder FROM cards ORDER BY holder', /masked table cards/],
  ['ALTER TABLE users RENAME COLUMN password TO pw', /changes masked table users/],
  ['ALTER TABLE users RENAME TO people', /changes masked table users/],
  ['ALTER TABLE users SET SCHEMA archive', /changes masked table users/],
  ['ALTER TABLE parent ATTACH PARTITION users FOR VALUES IN (1)', /changes masked table users/],
  ['CREATE TRIGGER t BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION f()', /changes masked table users/],
  ['CREATE RULE r AS ON INSERT TO users DO ALSO NOTIFY x', /changes masked table users/],
  ["CREATE POLICY p ON users USING (password LIKE 'a%')", /changes masked table users/],
  ['ALTER SCHEMA billing RENAME TO old_billing', /renaming a schema/],
  ['SELECT most_common_vals FROM pg_stats', /pg_stats shows the most common values/],
  [
    "SELECT query_to_xml('select password from users', true, true, '')",
    /query_to_xml reads data the guard cannot see/,
  ],
  ["SELECT * FROM dblink('dbname=x', 'select 1') AS t(x int)", /dblink/],
  [
    "DO $$ BEGIN RAISE NOTICE '%', (SELECT password FROM users LIMIT 1); END $$",
    /column "password" of masked table users/,
  ],
  [
    'CREATE FUNCTION leak() RETURNS text LANGUAGE sql AS $$ SELECT password FROM users LIMIT 1 $$',
    /column "password"/,
  ],
];

describe('masking: plain output columns are masked, every other use of a masked column is denied', () => {
  for (const [sql, want] of table) {
    it(sql, () => {
      const got = denial(sql);
      if (want === 'masked') assert.equal(got, undefined);
      else assert.match(got ?? '(not denied)', want);
    });
  }

  it('denies nothing when no masks are in force', () => {
    const [c] = classifier.classify('SELECT md5(password) FROM users').statements;
    assert.ok(c);
    assert.equal(
      maskDenial(c.mask, [], [], () => ({ masks: [] })),
      undefined,
    );
  });

  it('names the rule, and knows query-running functions in any schema', () => {
    assert.match(denial('SELECT md5(password) FROM users') ?? '', /by rule "mask-passwords"/);
    assert.equal(isQueryFunction('pg_catalog.query_to_xml'), true);
    assert.equal(isQueryFunction('"public"."dblink_exec"'), true);
    assert.equal(isQueryFunction('md5'), false);
  });
});
