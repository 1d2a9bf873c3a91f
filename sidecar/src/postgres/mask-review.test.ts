// Mask review with what the catalog knows. The catalog here is a test double (a fixed set of
// relations and functions): the real one is read on a PostgreSQL connection, which the
// end-to-end test (e2e/src/sidecar-postgres-masking.test.ts) drives against a real server.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { CatalogFunction, CatalogReader, CatalogRelation } from './catalog.ts';
import { reviewMasks, splitName } from './mask-review.ts';
import { SqlClassifier } from './sql-classifier.ts';
import { masksOf } from './test-masks.ts';

const masks = masksOf(`
    - name: mask-passwords
      match: { sql: { tables: [public.users, hashed_users], columns: [password] } }
      action: mask
`);

const rel = (
  oid: number,
  name: string,
  kind: string,
  cols: [string, number][],
  more: Partial<CatalogRelation> = {},
) =>
  ({
    oid,
    schema: 'public',
    name,
    kind,
    columns: new Map(cols.map(([n, t], i) => [i + 1, { name: n, typeOid: t }])),
    members: [],
    ancestors: [],
    triggerFunctions: [],
    ruleFunctions: [],
    ...more,
  }) as CatalogRelation;

const USERS = rel(
  1,
  'users',
  'r',
  [
    ['id', 23],
    ['password', 25],
    ['pin', 23],
  ],
  { triggerFunctions: [104] },
);
/** users with a column generated from password. */
const HASHED: CatalogRelation = {
  ...USERS,
  oid: 7,
  name: 'hashed_users',
  triggerFunctions: [],
  columns: new Map([...USERS.columns, [4, { name: 'password_md5', typeOid: 25, generatedFrom: [2] }]]),
};
const fn = (
  oid: number,
  name: string,
  language: string,
  definition?: string,
  more: Partial<CatalogFunction> = {},
) =>
  ({
    oid,
    schema: 'public',
    name,
    language,
    kind: 'f',
    ...(definition ? { definition } : {}),
    support: [],
    ...more,
  }) as CatalogFunction;

const RELATIONS: CatalogRelation[] = [
  USERS,
  HASHED,
  rel(2, 'user_names', 'v', [['id', 23]], { members: [{ schema: 'public', name: 'users', kind: 'r' }] }),
  rel(3, 'people', 'r', [['password', 25]], { members: [{ schema: 'public', name: 'users', kind: 'r' }] }),
  rel(
    4,
    'orders',
    'r',
    [
      ['id', 23],
      ['note', 25],
    ],
    { ruleFunctions: [] },
  ),
  rel(5, 'order_view', 'v', [['id', 23]], { ruleFunctions: [101] }),
  rel(8, 'column_stats', 'v', [['vals', 25]], {
    members: [{ schema: 'pg_catalog', name: 'pg_statistic', kind: 'r' }],
  }),
  // Another users, laid out differently: masked too when named without a schema (it may be the one meant).
  rel(
    6,
    'users',
    'r',
    [
      ['password', 25],
      ['id', 23],
    ],
    { schema: 'archive' },
  ),
];
const FUNCTIONS: CatalogFunction[] = [
  fn(
    101,
    'leak',
    'sql',
    'CREATE OR REPLACE FUNCTION public.leak() RETURNS text LANGUAGE sql AS $f$ SELECT password FROM users LIMIT 1 $f$',
  ),
  fn(
    102,
    'user_name',
    'sql',
    'CREATE OR REPLACE FUNCTION public.user_name(i int) RETURNS int LANGUAGE sql AS $f$ SELECT id FROM users WHERE id = i $f$',
  ),
  fn(
    103,
    'calls_leak',
    'plpgsql',
    'CREATE OR REPLACE FUNCTION public.calls_leak() RETURNS text LANGUAGE plpgsql AS $f$ BEGIN RETURN leak(); END $f$',
  ),
  fn(
    104,
    'audit_users',
    'plpgsql',
    "CREATE OR REPLACE FUNCTION public.audit_users() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RAISE NOTICE '%', NEW.password; RETURN NEW; END $f$",
  ),
  fn(105, 'py', 'plpython3u'),
  fn(106, 'concat_agg', 'internal', undefined, { kind: 'a', support: [101] }),
  fn(107, 'md5', 'internal', undefined, { schema: 'pg_catalog' }),
  fn(108, 'crypt', 'c'),
];

const catalog: CatalogReader = {
  cachedRelation: () => undefined,
  relationsByOid: async (oids) =>
    new Map(RELATIONS.filter((r) => oids.includes(r.oid)).map((r) => [r.oid, r])),
  relationsNamed: async (schema, name) =>
    RELATIONS.filter((r) => r.name === name && (schema === undefined || r.schema === schema)),
  functionsNamed: async (schema, name) =>
    FUNCTIONS.filter((f) => f.name === name && (schema === undefined || f.schema === schema)),
  functionsByOid: async (oids) => FUNCTIONS.filter((f) => oids.includes(f.oid)),
};

let classifier: SqlClassifier;
before(async () => {
  classifier = await SqlClassifier.create();
});

async function review(sql: string) {
  const [c] = classifier.classify(sql).statements;
  assert.ok(c);
  return reviewMasks(
    { facts: c.mask, functions: c.statement.functions ?? [], writes: c.statement.writes ?? [] },
    masks,
    { catalog, classifier },
  );
}

describe('reviewMasks: what the catalog adds', () => {
  const denied: [string, RegExp][] = [
    // Fails without the catalog: nothing in the statement names users.
    ['SELECT * FROM user_names', /user_names reads masked table public\.users/],
    ['SELECT leak()', /function public\.leak: column "password" of masked table users/],
    ['SELECT calls_leak()', /function public\.calls_leak: function public\.leak/],
    ['SELECT * FROM order_view', /function public\.leak/],
    ['SELECT concat_agg(note) FROM orders', /aggregate public\.concat_agg: function public\.leak/],
    ['SELECT py()', /written in plpython3u/],
    ['SELECT * FROM column_stats', /column_stats reads pg_catalog\.pg_statistic/],
    // The table's trigger sees every written row (NEW.password), and may say it.
    ["INSERT INTO users (id, password) VALUES (1, 'x')", /function public\.audit_users: column "password"/],
    // A generated column computed from a masked one is as good as the masked one.
    [
      'SELECT id FROM hashed_users WHERE password_md5 = md5($1)',
      /column "password_md5" of masked table hashed_users/,
    ],
    // people contains users: its password column is users' password.
    ['SELECT id FROM people WHERE password = $1', /column "password" of masked table people/],
  ];
  for (const [sql, want] of denied) {
    it(`denies ${sql}`, async () => {
      const v = await review(sql);
      assert.match(v.denial ?? '(not denied)', want);
    });
  }

  const allowed = [
    'SELECT user_name(1)',
    'SELECT md5(note) FROM orders',
    'SELECT crypt(note, note) FROM orders',
    'SELECT password FROM users',
    'SELECT * FROM orders',
    // Read, not written: users' trigger does not run.
    'SELECT id FROM users',
  ];
  for (const sql of allowed) {
    it(`allows ${sql}`, async () => {
      const v = await review(sql);
      assert.equal(v.denial, undefined);
    });
  }

  it('plans COPY of a masked table by the catalog’s columns; denies it when two schemas disagree', async () => {
    const v = await review('COPY public.users TO STDOUT WITH (FORMAT csv)');
    assert.ok(v.denial === undefined && v.copy);
    assert.deepEqual(
      v.copy.columns.map((c) => c.maskedBy),
      [undefined, 'mask-passwords', undefined],
    );
    assert.equal(v.copy.format.format, 'csv');
    const listed = await review('COPY public.users (password, id) TO STDOUT');
    assert.ok(listed.denial === undefined && listed.copy);
    assert.deepEqual(
      listed.copy.columns.map((c) => c.maskedBy),
      ['mask-passwords', undefined],
    );
    // Without a schema the search path decides which users COPY reads, and the two differ.
    assert.match((await review('COPY users TO STDOUT')).denial ?? '', /name its schema/);
    const archive = await review('COPY archive.users TO STDOUT');
    assert.ok(archive.denial === undefined && archive.copy === undefined);
    assert.match((await review('COPY public.users TO STDOUT (ENCODING latin1)')).denial ?? '', /ENCODING/);
    const hashed = await review('COPY hashed_users (id, password_md5) TO STDOUT');
    assert.ok(hashed.denial === undefined && hashed.copy);
    assert.deepEqual(
      hashed.copy.columns.map((c) => c.maskedBy),
      [undefined, 'mask-passwords'],
    );
    const plain = await review('COPY orders TO STDOUT');
    assert.ok(plain.denial === undefined && plain.copy === undefined && !plain.reaches);
  });

  it('splits names as written', () => {
    assert.deepEqual(splitName('users'), { name: 'users' });
    assert.deepEqual(splitName('"my.schema"."Users"'), { schema: 'my.schema', name: 'Users' });
    assert.deepEqual(splitName('db.s.t'), { schema: 's', name: 't' });
  });
});
