import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluate } from './evaluate.ts';
import { parsePolicy } from './parse.ts';
import {
  isSqlMaskRule,
  maskCoversColumn,
  masksOfCatalogTable,
  masksOfWrittenTable,
  nodeKinds,
  qualifiedNameMatcher,
  SQL_KINDS,
  SQL_KNOWN_NODES,
  sqlMasksFor,
  sqlNameParts,
  statementKinds,
} from './sql-match.ts';
import type { Action, SqlMask, SqlStatement } from './types.ts';

const protection = { policyConfigMaps: ['chaperone-policy'], sidecarContainer: 'chaperone-sidecar' };

const policy = parsePolicy(`
apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: sql }
spec:
  defaultAction: allow
  rules:
    - name: no-drop
      match: { protocols: [postgres], sql: { statements: [drop, truncate, delete-without-where] } }
      action: deny
      message: Agents may not drop or empty tables.
    - name: protect-payments
      match: { sql: { statements: [write], tables: [billing.payments] } }
      action: deny
    - name: no-file-access
      match: { sql: { functions: ['pg_read_*', lo_import, pg_catalog.set_config] } }
      action: deny
    - name: no-programs
      match: { sql: { statements: [copy-program, alter-system, set-role, create-function-security-definer] } }
      action: deny
    - name: hold-ssn
      match: { sql: { tables: [users], columns: [ssn] } }
      action: review
    - name: only-orders-db-ddl
      match: { sql: { databases: ['reporting'], statements: [ddl] } }
      action: deny
    - name: migrations-may-run-do
      match: { sql: { databases: [migrations], statements: [do] } }
      action: allow
`);

const st = (s: Partial<SqlStatement> & { kind: string }): SqlStatement => ({ tables: [], ...s });
const q = (database: string, ...statements: SqlStatement[]): Action => ({
  protocol: 'postgres',
  verb: 'query',
  sql: { database, statements },
});

// [case, action, expected decision, expected rule]
const table: [string, Action, string, string][] = [
  [
    'plain select',
    q('app', st({ kind: 'SelectStmt', kinds: ['select'], tables: ['orders'] })),
    'allow',
    'default',
  ],
  [
    'drop table',
    q('app', st({ kind: 'DropStmt', kinds: ['drop', 'ddl', 'write'], tables: ['orders'] })),
    'deny',
    'no-drop',
  ],
  // A hand-written action gives only the node type: its kinds come from the node type.
  ['drop by node type only', q('app', st({ kind: 'DropdbStmt' })), 'deny', 'no-drop'],
  ['delete with where', q('app', st({ kind: 'DeleteStmt', tables: ['orders'] })), 'allow', 'default'],
  ['delete without where (flag)', q('app', st({ kind: 'DeleteStmt', unqualified: true })), 'deny', 'no-drop'],
  [
    'multi-statement: the worst wins (SELECT 1; COMMIT; DROP SCHEMA public CASCADE)',
    q(
      'app',
      st({ kind: 'SelectStmt', kinds: ['select'] }),
      st({ kind: 'TransactionStmt', kinds: ['transaction'] }),
      st({ kind: 'DropStmt', kinds: ['drop', 'ddl', 'write'], schemas: ['public'] }),
    ),
    'deny',
    'no-drop',
  ],
  [
    'write to a protected table, qualified',
    q('app', st({ kind: 'UpdateStmt', kinds: ['update', 'write'], tables: ['billing.payments'] })),
    'deny',
    'protect-payments',
  ],
  [
    'write to it unqualified: the search path may lead there, so a deny reaches it',
    q('app', st({ kind: 'InsertStmt', kinds: ['insert', 'write'], tables: ['payments'] })),
    'deny',
    'protect-payments',
  ],
  [
    'write to a same-named table in another schema',
    q('app', st({ kind: 'InsertStmt', kinds: ['insert', 'write'], tables: ['audit.payments'] })),
    'allow',
    'default',
  ],
  [
    'GRANT on every table of the schema reaches the protected table',
    q('app', st({ kind: 'GrantStmt', kinds: ['grant', 'write'], schemas: ['billing'] })),
    'deny',
    'protect-payments',
  ],
  [
    'pg_read_file',
    q('app', st({ kind: 'SelectStmt', kinds: ['select'], functions: ['pg_read_file'] })),
    'deny',
    'no-file-access',
  ],
  [
    'qualified pg_catalog.pg_read_binary_file',
    q('app', st({ kind: 'SelectStmt', kinds: ['select'], functions: ['pg_catalog.pg_read_binary_file'] })),
    'deny',
    'no-file-access',
  ],
  [
    'set_config unqualified',
    q('app', st({ kind: 'SelectStmt', functions: ['set_config'] })),
    'deny',
    'no-file-access',
  ],
  [
    'COPY TO PROGRAM',
    q('app', st({ kind: 'CopyStmt', kinds: ['copy', 'copy-to', 'copy-program', 'copy-to-program'] })),
    'deny',
    'no-programs',
  ],
  [
    'COPY TO STDOUT',
    q('app', st({ kind: 'CopyStmt', kinds: ['copy', 'copy-to'], tables: ['orders'], columns: ['*'] })),
    'allow',
    'default',
  ],
  ['SET ROLE', q('app', st({ kind: 'VariableSetStmt', kinds: ['set', 'set-role'] })), 'deny', 'no-programs'],
  ['SET search_path', q('app', st({ kind: 'VariableSetStmt', kinds: ['set'] })), 'allow', 'default'],
  [
    'a column named in the tree',
    q('app', st({ kind: 'SelectStmt', kinds: ['select'], tables: ['users'], columns: ['ssn'] })),
    'review',
    'hold-ssn',
  ],
  [
    'SELECT * reaches every column',
    q('app', st({ kind: 'SelectStmt', kinds: ['select'], tables: ['users'], columns: ['*'] })),
    'review',
    'hold-ssn',
  ],
  [
    'another column of the table',
    q('app', st({ kind: 'SelectStmt', kinds: ['select'], tables: ['users'], columns: ['name'] })),
    'allow',
    'default',
  ],
  [
    'conditions hold on one statement, not across two',
    q(
      'app',
      st({ kind: 'SelectStmt', kinds: ['select'], tables: ['users'], columns: ['name'] }),
      st({ kind: 'SelectStmt', kinds: ['select'], tables: ['accounts'], columns: ['ssn'] }),
    ),
    'allow',
    'default',
  ],
  [
    'ddl in the database the rule names',
    q('reporting', st({ kind: 'IndexStmt' })),
    'deny',
    'only-orders-db-ddl',
  ],
  ['ddl elsewhere', q('app', st({ kind: 'IndexStmt' })), 'allow', 'default'],
  [
    'a DO block is denied though the default allows',
    q('app', st({ kind: 'DoStmt', kinds: ['do'] })),
    'deny',
    'chaperone-sql-dynamic',
  ],
  [
    'a DO block where an allow rule names "do"',
    q('migrations', st({ kind: 'DoStmt', kinds: ['do'] })),
    'allow',
    'migrations-may-run-do',
  ],
  [
    'a DO block with EXECUTE inside needs "dynamic-sql" named too',
    q('migrations', st({ kind: 'DoStmt', kinds: ['do', 'dynamic-sql'] })),
    'deny',
    'chaperone-sql-dynamic',
  ],
  [
    'a function with EXECUTE inside is dynamic SQL, which "do" does not cover',
    q('migrations', st({ kind: 'CreateFunctionStmt', kinds: ['create', 'create-function', 'dynamic-sql'] })),
    'deny',
    'chaperone-sql-dynamic',
  ],
  [
    'an unreadable statement is denied whatever the policy says',
    q('migrations', st({ kind: 'unknown', problem: 'syntax error at or near "DROPP"' })),
    'deny',
    'chaperone-sql-unreadable',
  ],
];

describe('SQL rules', () => {
  for (const [name, action, want, rule] of table) {
    it(name, () => {
      const d = evaluate(action, policy, protection);
      assert.deepEqual([d.action, d.rule], [want, rule], d.message);
    });
  }

  // Fails if a restrictive rule's tables matched only the names a statement writes (sql-match.ts
  // sqlTest): a DELETE through a view over billing.payments would not be denied.
  it('a restrictive rule matches the tables the catalog says a statement reaches; an allow rule does not', () => {
    const through = st({
      kind: 'DeleteStmt',
      kinds: ['delete', 'write'],
      tables: ['payments_v'],
      writes: ['payments_v'],
      reaches: ['billing.payments'],
    });
    const d = evaluate(q('app', through), policy, protection);
    assert.deepEqual([d.action, d.rule], ['deny', 'protect-payments']);
    const allowOnly = parsePolicy(`
apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: p }
spec:
  defaultAction: deny
  rules:
    - { name: views, match: { sql: { statements: [delete], tables: [payments_v] } }, action: allow }
`);
    assert.equal(evaluate(q('app', through), allowOnly, protection).action, 'allow');
  });

  it("the deny message is the rule's message", () => {
    const d = evaluate(q('app', st({ kind: 'DropStmt', tables: ['x'] })), policy, protection);
    assert.equal(d.message, 'Agents may not drop or empty tables.');
  });

  it('allow rules grant only what they name: an unqualified table does not match a qualified glob', () => {
    const allowOnly = parsePolicy(`
apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: p }
spec:
  defaultAction: deny
  rules:
    - { name: read-orders, match: { sql: { statements: [select], tables: [public.orders], columns: [id] } }, action: allow }
`);
    const read = (tables: string[], columns: string[]) =>
      evaluate(
        q('app', st({ kind: 'SelectStmt', kinds: ['select'], tables, columns })),
        allowOnly,
        protection,
      ).action;
    assert.equal(read(['public.orders'], ['id']), 'allow');
    assert.equal(read(['orders'], ['id']), 'deny');
    // `*` reaches more columns than the allow names.
    assert.equal(read(['public.orders'], ['*']), 'deny');
  });
});

describe('allow rules name everything a statement does', () => {
  const p = parsePolicy(`
apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: p }
spec:
  defaultAction: deny
  rules:
    - { name: reads, match: { sql: { statements: [select, copy-to] } }, action: allow }
    - { name: deletes, match: { sql: { statements: [delete] } }, action: allow }
    - { name: node-type, match: { sql: { statements: [TruncateStmt] } }, action: allow }
`);
  const cases: [string, SqlStatement, string][] = [
    ['select', st({ kind: 'SelectStmt', kinds: ['select'] }), 'reads'],
    // WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d
    [
      'select with a deleting CTE: neither allow names both',
      st({ kind: 'SelectStmt', kinds: ['select', 'delete', 'delete-without-where', 'write'] }),
      'default',
    ],
    [
      'select with a deleting and an inserting CTE',
      st({ kind: 'SelectStmt', kinds: ['select', 'delete', 'insert', 'write'] }),
      'default',
    ],
    [
      'delete without where is a delete',
      st({ kind: 'DeleteStmt', kinds: ['delete-without-where', 'delete', 'write'] }),
      'deletes',
    ],
    ['COPY TO STDOUT', st({ kind: 'CopyStmt', kinds: ['copy-to', 'copy'] }), 'reads'],
    [
      'COPY TO PROGRAM is not only a copy-to',
      st({ kind: 'CopyStmt', kinds: ['copy-to', 'copy-to-program', 'copy-program', 'copy'] }),
      'default',
    ],
    ['EXPLAIN ANALYZE DELETE', st({ kind: 'ExplainStmt', kinds: ['explain', 'delete', 'write'] }), 'default'],
    [
      'a node type named covers its kinds',
      st({ kind: 'TruncateStmt', kinds: ['truncate', 'ddl', 'write'] }),
      'node-type',
    ],
    [
      'a statement with no friendly kind needs its node type named',
      st({ kind: 'ReassignOwnedStmt', kinds: [] }),
      'default',
    ],
  ];
  for (const [name, s, rule] of cases) {
    it(name, () => assert.equal(evaluate(q('app', s), p, protection).rule, rule));
  }
});

describe('qualifiedNameMatcher', () => {
  it('matches by last part, and quoted parts stay whole', () => {
    const deny = qualifiedNameMatcher(['s.orders', 'logs'], true);
    assert.equal(deny('s.orders'), true);
    assert.equal(deny('orders'), true);
    assert.equal(deny('t.orders'), false);
    assert.equal(deny('x.logs'), true);
    assert.equal(deny('"s.orders"'), false);
    const allow = qualifiedNameMatcher(['s.orders'], false);
    assert.equal(allow('orders'), false);
  });
});

describe('built-in SQL rules and how names and schemas match', () => {
  /** A default-deny policy with these rules (YAML flow mappings, comma-separated). */
  const denyingBut = (...rules: string[]) =>
    parsePolicy(`apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: p }
spec: { defaultAction: deny, rules: [${rules.join(', ')}] }`);
  const p = denyingBut(
    '{ name: no-secrets, match: { sql: { tables: [public.secrets] } }, action: deny }',
    '{ name: no-kill, match: { sql: { functions: [pg_catalog.pg_terminate_backend] } }, action: deny }',
    '{ name: admins-may-do-anything, match: { sql: { databases: [admin], statements: [alter, create, credential, select, dynamic-sql] } }, action: allow }',
    '{ name: read-orders, match: { sql: { statements: [select], tables: [orders] } }, action: allow }',
  );
  const decide = (database: string, s: SqlStatement) => {
    const d = evaluate(q(database, s), p, protection);
    return [d.action, d.rule];
  };

  // Fails without the credential rule in sqlBuiltins: the allow rule names every kind.
  it('denies giving a role a password whatever the policy allows', () => {
    const alterRole = st({ kind: 'AlterRoleStmt', kinds: ['alter', 'credential', 'ddl', 'write'] });
    assert.deepEqual(decide('admin', alterRole), ['deny', 'chaperone-sql-credentials']);
    const plain = st({ kind: 'AlterRoleStmt', kinds: ['alter', 'ddl', 'write'] });
    assert.deepEqual(decide('admin', plain), ['allow', 'admins-may-do-anything']);
  });

  // Fails without the database part dropped in qualifiedNameMatcher (for hand-written actions).
  it('leaves out a database part: app.public.secrets is public.secrets', () => {
    const read = (t: string) => st({ kind: 'SelectStmt', kinds: ['select'], tables: [t] });
    assert.deepEqual(decide('admin', read('app.public.secrets')), ['deny', 'no-secrets']);
    const kill = st({
      kind: 'SelectStmt',
      kinds: ['select'],
      functions: ['app.pg_catalog.pg_terminate_backend'],
    });
    assert.deepEqual(decide('admin', kill), ['deny', 'no-kill']);
    assert.equal(qualifiedNameMatcher(['public.orders'], false)('app.public.orders'), true);
    assert.equal(qualifiedNameMatcher(['public.orders'], false)('app.other.orders'), false);
  });

  // Fails without the `*` schema matching in sqlTest: pg_stats holds values of every table.
  it('a statement reaching every table (schemas: *) matches any tables condition, and only * allows it', () => {
    const stats = st({ kind: 'SelectStmt', kinds: ['select'], tables: ['pg_stats'], schemas: ['*'] });
    assert.deepEqual(decide('app', stats), ['deny', 'no-secrets']);
    const p2 = denyingBut(
      '{ name: read-stats, match: { sql: { statements: [select], tables: [pg_stats] } }, action: allow }',
      "{ name: read-all, match: { sql: { databases: [reports], statements: [select], tables: ['*'] } }, action: allow }",
    );
    assert.equal(evaluate(q('app', stats), p2, protection).rule, 'default');
    assert.equal(evaluate(q('reports', stats), p2, protection).rule, 'read-all');
  });
});

describe('statement kinds', () => {
  it('every node type a kind names is a known node type', () => {
    for (const [name, k] of Object.entries(SQL_KINDS)) {
      for (const n of k.nodes ?? []) assert.ok(SQL_KNOWN_NODES.has(n), `${name}: ${n}`);
    }
  });

  it('derives kinds from node types for hand-written statements', () => {
    assert.deepEqual(nodeKinds('AlterSystemStmt').sort(), ['alter', 'alter-system', 'ddl', 'write']);
    assert.deepEqual(nodeKinds('SelectStmt'), ['select']);
    assert.ok(
      statementKinds({ kind: 'UpdateStmt', tables: [], unqualified: true }).includes('update-without-where'),
    );
  });
});

describe('SQL masks', () => {
  const masking = parsePolicy(`
apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: masks }
spec:
  defaultAction: allow
  rules:
    - name: no-drop
      match: { sql: { statements: [drop] } }
      action: deny
    - name: reads-users
      match: { sql: { statements: [select], tables: [users] } }
      action: allow
    - name: mask-passwords
      match: { sql: { tables: [users], columns: [password, 'pin*'] } }
      action: mask
    - name: mask-cards
      match: { sql: { tables: [billing.cards] } }
      action: mask
      message: Card data is masked.
    - name: mask-reporting
      match: { protocols: [postgres], sql: { databases: [reporting] } }
      action: mask
    - name: mask-for-others
      match: { protocols: [postgres], users: ['system:serviceaccount:other:*'], sql: { columns: [salary] } }
      action: mask
    - name: mask-kube-only
      match: {}
      action: mask
`);
  const rules = masking.rules;
  const select = (database: string, s: Partial<SqlStatement>, user?: string): Action => ({
    ...q(database, st({ kind: 'SelectStmt', kinds: ['select'], ...s })),
    ...(user ? { user } : {}),
  });
  const names = (d: { sqlMasks?: readonly { rule: string }[] }) => d.sqlMasks?.map((m) => m.rule);

  it('applies every SQL mask rule of the session, not only the first that matches', () => {
    assert.deepEqual(
      sqlMasksFor(select('app', {}), rules).map((m) => m.rule),
      ['mask-passwords', 'mask-cards'],
    );
    assert.deepEqual(
      sqlMasksFor(select('reporting', {}), rules).map((m) => m.rule),
      ['mask-passwords', 'mask-cards', 'mask-reporting'],
    );
    assert.deepEqual(
      sqlMasksFor(select('app', {}, 'system:serviceaccount:other:x'), rules).map((m) => m.rule),
      ['mask-passwords', 'mask-cards', 'mask-for-others'],
    );
    // A mask rule with neither sql conditions nor the postgres protocol masks Kubernetes objects only.
    assert.equal(
      isSqlMaskRule(rules.find((r) => r.name === 'mask-kube-only') as (typeof rules)[number]),
      false,
    );
  });

  // Fails if mask rules took part in first-match for SQL (the allow before them would unmask,
  // or the first mask rule would hide the second).
  it('an allow rule placed earlier does not unmask, and a statement naming a masked column is decided mask', () => {
    const d = evaluate(select('app', { tables: ['users'], columns: ['password'] }), masking, protection);
    assert.equal(d.action, 'mask');
    assert.equal(d.rule, 'mask-passwords');
    assert.deepEqual(names(d), ['mask-passwords', 'mask-cards']);
    const star = evaluate(select('app', { tables: ['billing.cards'], columns: ['*'] }), masking, protection);
    assert.deepEqual([star.action, star.rule, star.message], ['mask', 'mask-cards', 'Card data is masked.']);
  });

  it('a statement naming no masked column stays allowed, with the masks attached for what it returns', () => {
    const d = evaluate(select('app', { tables: ['users'], columns: ['id'] }), masking, protection);
    assert.deepEqual([d.action, d.rule], ['allow', 'reads-users']);
    assert.deepEqual(names(d), ['mask-passwords', 'mask-cards']);
    const view = evaluate(select('app', { tables: ['user_view'], columns: ['*'] }), masking, protection);
    assert.deepEqual([view.action, names(view)], ['allow', ['mask-passwords', 'mask-cards']]);
  });

  it('denials stand and carry no masks', () => {
    const d = evaluate(
      q('app', st({ kind: 'DropStmt', kinds: ['drop'], tables: ['users'] })),
      masking,
      protection,
    );
    assert.deepEqual([d.action, d.rule, d.sqlMasks], ['deny', 'no-drop', undefined]);
  });

  it('matches tables as written (search path) and as the catalog names them, and columns by glob', () => {
    const masks = sqlMasksFor(select('app', {}), rules);
    const cases: [SqlMask[], string[]][] = [
      [masksOfWrittenTable(masks, 'users'), ['mask-passwords']],
      [masksOfWrittenTable(masks, 'cards'), ['mask-cards']],
      [masksOfCatalogTable(masks, 'public.cards'), []],
      [masksOfCatalogTable(masks, 'billing.cards'), ['mask-cards']],
      [masksOfCatalogTable(masks, 'app.users'), ['mask-passwords']],
    ];
    for (const [got, want] of cases)
      assert.deepEqual(
        got.map((m) => m.rule),
        want,
      );
    const [passwords, cards] = masks as [SqlMask, SqlMask];
    assert.equal(maskCoversColumn(passwords, 'pin_code'), true);
    assert.equal(maskCoversColumn(passwords, 'email'), false);
    assert.equal(maskCoversColumn(passwords, '*'), true);
    assert.equal(maskCoversColumn(cards, 'anything'), true);
  });

  it('rejects SQL mask rules that name statements or functions, or Kubernetes mask fields', () => {
    const rule =
      (match: string, extra = '') =>
      () =>
        parsePolicy(`
apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: bad }
spec:
  rules:
    - name: m
      match: ${match}
      action: mask${extra}
`);
    assert.throws(rule('{ sql: { statements: [select], tables: [users] } }'), /not statements or functions/);
    assert.throws(rule('{ sql: { functions: [md5] } }'), /not statements or functions/);
    assert.throws(
      rule('{ sql: { tables: [users] } }', '\n      mask: { fields: [password] }'),
      /mask\.fields is for Kubernetes/,
    );
    // Accepted, such a rule would mask nothing: SQL statements never meet a namespaces condition.
    assert.throws(
      rule('{ namespaces: [shop], sql: { tables: [users], columns: [email] } }'),
      /match\.namespaces.*never be masked/,
    );
    assert.doesNotThrow(rule('{ protocols: [postgres], sql: { tables: [users], columns: [email] } }'));
  });

  it('splits names as written into their parts, quoted or not', () => {
    assert.deepEqual(sqlNameParts('"a.b"."c""d"', true), ['a.b', 'c"d']);
    assert.deepEqual(sqlNameParts('"a.b".c'), ['"a.b"', 'c']);
  });
});
