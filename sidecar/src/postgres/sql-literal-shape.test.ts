// Soundness of the classification cache by literal shape: with real libpg-query parse trees, a
// string classified from the cache must get exactly the classification a parse of its own gives.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { type Classification, loadSqlParser, SqlClassifier } from './sql-classifier.ts';
import { digitRunsAreIntegers, digitTemplate } from './sql-literal-shape.ts';
import type { ScanToken } from './sql-reading.ts';

let parser: Awaited<ReturnType<typeof loadSqlParser>>;
before(async () => {
  parser = await loadSqlParser();
});

/** The classification of `sql` parsed afresh (a classifier with nothing cached). */
function fresh(sql: string): Classification {
  return new SqlClassifier(parser).classify(sql);
}

/** Classifies `first` then `second` with one classifier; says whether `second` came from the shape cache. */
function pair(first: string, second: string): { shapeHit: boolean; second: Classification } {
  const c = new SqlClassifier(parser);
  c.classify(first);
  const before = c.stats.shapeHits;
  const out = c.classify(second);
  return { shapeHit: c.stats.shapeHits > before, second: out };
}

describe('classification cache by literal shape', () => {
  it('statements that differ only in literal values share one parse, with the same classification', () => {
    const cases: [string, string][] = [
      [
        'SELECT abalance FROM pgbench_accounts WHERE aid = 123;',
        'SELECT abalance FROM pgbench_accounts WHERE aid = 98765;',
      ],
      [
        "SELECT id FROM users WHERE email = 'a@example.com'",
        "SELECT id FROM users WHERE email = 'it''s secret'",
      ],
      ['DELETE FROM t WHERE id = 7', 'DELETE FROM t WHERE id = 8'],
      ['SELECT a FROM t WHERE a = 0x10 AND b = 1.5', 'SELECT a FROM t WHERE a = 0x11 AND b = 2.75'],
      ['SELECT * FROM t WHERE 5 < id AND name <> $$x$$', 'SELECT * FROM t WHERE 6 < id AND name <> $$y$$'],
      // Comments and white space are not part of the shape, nor kept in the normalised text.
      ['SELECT a FROM t WHERE a = 1 /* one */', 'SELECT a FROM t WHERE a = 2 -- two\n'],
    ];
    for (const [a, b] of cases) {
      const { shapeHit, second } = pair(a, b);
      assert.ok(shapeHit, `${b} after ${a}`);
      assert.deepStrictEqual(second, fresh(b), b);
    }
  });

  it('statements that differ in anything but literal values are different entries', () => {
    const a = 'SELECT abalance FROM pgbench_accounts WHERE aid = 1';
    for (const b of [
      'SELECT abalance FROM pgbench_accounts WHERE bid = 2',
      'SELECT abalance FROM pgbench_accounts WHERE aid < 2',
      'SELECT bbalance FROM pgbench_accounts WHERE aid = 2',
      'SELECT abalance FROM pgbench_branches WHERE aid = 2',
      "SELECT abalance FROM pgbench_accounts WHERE aid = '2'",
      'SELECT abalance FROM pgbench_accounts WHERE aid = 2.5',
      'SELECT abalance FROM pgbench_accounts WHERE aid = $1',
      'select abalance from pgbench_accounts where aid = 2',
      'SELECT abalance FROM pgbench_accounts WHERE aid = 2; SELECT 1',
    ]) {
      const { shapeHit, second } = pair(a, b);
      assert.equal(shapeHit, false, b);
      assert.deepStrictEqual(second, fresh(b), b);
    }
    // Digits that are not integer literals: in names, parameters, other numbers.
    for (const [x, y] of [
      ['SELECT a FROM t1 WHERE a = 5', 'SELECT a FROM t2 WHERE a = 5'],
      ['SELECT "c1" FROM t WHERE a = 5', 'SELECT "c2" FROM t WHERE a = 5'],
      ['SELECT a FROM t WHERE a = $1 AND b = 5', 'SELECT a FROM t WHERE a = $2 AND b = 5'],
      ['SELECT a FROM t WHERE a = 5', 'SELECT a FROM t WHERE a = 5000000000'],
    ] as const) {
      const { shapeHit, second } = pair(x, y);
      assert.equal(shapeHit, false, `${y} after ${x}`);
      assert.deepStrictEqual(second, fresh(y), y);
    }
  });

  it('white space inside a quoted name is part of the shape', () => {
    // The audit text collapses white space everywhere, in a quoted name too: "a b" and "a  b" are different tables.
    for (const [a, b] of [
      ['SELECT * FROM "a b" WHERE id = 1', 'SELECT * FROM "a  b" WHERE id = 2'],
      ['SELECT * FROM "a b" WHERE id = 1', 'SELECT * FROM "a\tb" WHERE id = 1'],
      ['SELECT * FROM t WHERE "a b" = 1', 'SELECT * FROM t WHERE "a\nb" = 2'],
      ['SELECT * FROM U&"a b" WHERE id = 1', 'SELECT * FROM U&"a  b" WHERE id = 1'],
    ] as const) {
      const { shapeHit, second } = pair(a, b);
      assert.equal(shapeHit, false, `${b} after ${a}`);
      assert.deepStrictEqual(second, fresh(b), b);
    }
    assert.ok(pair('SELECT * FROM "a  b" WHERE id = 1', 'SELECT * FROM  "a  b"  WHERE id = 2').shapeHit);
    // Names made of letters and white space of every kind (a no-break space is part of an unquoted name).
    const name = fc
      .array(fc.constantFrom('a', 'b', ' ', '  ', '\t', '\n', '\u00a0'), { minLength: 1, maxLength: 4 })
      .map((p) => p.join(''));
    const c = new SqlClassifier(parser);
    fc.assert(
      fc.property(name, name, fc.nat(99), fc.boolean(), (table, column, n, quoted) => {
        const q = (x: string) => (quoted ? `"${x}"` : `a${x.replace(/\s/g, '\u00a0')}`);
        const sql = `SELECT * FROM ${q(table)} WHERE ${q(column)} = ${n}`;
        assert.deepStrictEqual(c.classify(sql), fresh(sql), sql);
      }),
      { numRuns: 300 },
    );
    assert.ok(c.stats.shapeHits > 0, 'some statements came from the cache by shape');
  });

  it("a U&'…' string keeps the statement out of the cache (the parser reads its escapes, and may refuse them)", () => {
    const b = "SELECT * FROM t WHERE c = U&'\\+0'";
    const { shapeHit, second } = pair("SELECT * FROM t WHERE c = U&'x'", b);
    assert.equal(shapeHit, false);
    assert.match(second.statements[0]?.statement.problem ?? '', /parser refused/);
    assert.deepStrictEqual(second, fresh(b));
  });

  it('whatever the digits, a classification from the cache is the one a parse gives', () => {
    const digits = fc.oneof(fc.nat(12), fc.nat(), fc.constantFrom(0, 7, 1_000_000_000, 9_999_999_999));
    const templates = [
      (n: number[]) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${n[0]}`,
      (n: number[]) => `SELECT c${n[0]} FROM t WHERE a = ${n[1]}`,
      (n: number[]) => `SELECT a FROM t${n[0]} WHERE a = ${n[1]} /* ${n[2]} */ AND b = '${n[2]}'`,
      (n: number[]) => `DELETE FROM t WHERE ${n[0]} = ${n[1]}`,
      (n: number[]) => `DELETE FROM t WHERE id = ${n[0]} OR ${n[1]} = ${n[2]}`,
      (n: number[]) => `SELECT a FROM t WHERE a = ${n[0]}.${n[1]} AND b = 0x${n[2]}`,
      (n: number[]) => `SELECT a FROM t WHERE a = $${(n[0] ?? 0) + 1} AND b = ${n[1]}`,
      (n: number[]) => `SELECT a, b FROM t WHERE a = ${n[0]} ORDER BY ${n[1]}`,
    ];
    const c = new SqlClassifier(parser);
    fc.assert(
      fc.property(fc.nat(templates.length - 1), fc.array(digits, { minLength: 3, maxLength: 3 }), (t, n) => {
        const sql = (templates[t] as (n: number[]) => string)(n);
        assert.deepStrictEqual(c.classify(sql), fresh(sql), sql);
      }),
      { numRuns: 400 },
    );
    assert.ok(c.stats.shapeHits > 0, 'some statements came from the cache by shape');
  });

  it('the digit template applies only where every digit run is an integer literal', () => {
    const runsOf = (sql: string) =>
      digitRunsAreIntegers(Buffer.from(sql), parser.scanSync(sql).tokens as ScanToken[]);
    assert.equal(runsOf('SELECT a FROM t WHERE a = 12 AND b = 345'), true);
    for (const sql of [
      'SELECT a FROM t1 WHERE a = 2',
      "SELECT a FROM t WHERE a = 2 AND b = 'x1'",
      'SELECT a FROM t WHERE a = 2 -- 3',
      'SELECT a FROM t WHERE a = $1',
      'SELECT a FROM t WHERE a = 1.5',
      'SELECT a FROM t WHERE a = 0x1F',
      'SELECT a FROM t WHERE a = 1_000',
      'SELECT a FROM t WHERE a = 1e5',
      'SELECT a FROM t WHERE a = 1234567890',
    ]) {
      assert.equal(runsOf(sql), false, sql);
    }
    assert.equal(digitTemplate('SELECT 1, 23'), 'SELECT \u0000, \u0000');
    assert.equal(digitTemplate('SELECT a'), undefined);
    assert.equal(digitTemplate('SELECT 1234567890'), undefined);
  });

  it('a literal whose value can decide anything keeps the statement out of the cache', () => {
    const cases: [string, string][] = [
      // A condition folded from constants: with a WHERE that holds for every row, or not.
      ['DELETE FROM t WHERE 1 = 2', 'DELETE FROM t WHERE 1 = 1'],
      ['DELETE FROM t WHERE id = 3 OR 1 = 2', 'DELETE FROM t WHERE id = 3 OR 1 = 1'],
      ["DELETE FROM t WHERE 'a' = 'b'", "DELETE FROM t WHERE 'a' = 'a'"],
      // Settings and set_config names.
      ["SET client_encoding = 'UTF8'", "SET client_encoding = 'SQL_ASCII'"],
      [
        "SELECT set_config('work_mem', '1MB', false)",
        "SELECT set_config('client_encoding', 'LATIN1', false)",
      ],
      // Output references and code bodies.
      ['SELECT a, b FROM t ORDER BY 1', 'SELECT a, b FROM t ORDER BY 2'],
      ["DO 'BEGIN NULL; END'", "DO 'BEGIN DROP TABLE t; END'"],
      [
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'DELETE FROM t RETURNING 1'",
      ],
      // A backslash in a plain string reads otherwise with standard_conforming_strings off.
      ["SELECT a FROM t WHERE a = 'x'", "SELECT a FROM t WHERE a = 'x\\' OR 1 = 1 --'"],
      // Casts and function arguments.
      ["SELECT a FROM t WHERE a = 'pg_class'::regclass", "SELECT a FROM t WHERE a = 'pg_authid'::regclass"],
      ["SELECT a FROM t WHERE a = lower('x')", "SELECT a FROM t WHERE a = lower('y')"],
    ];
    for (const [a, b] of cases) {
      const { shapeHit, second } = pair(a, b);
      assert.equal(shapeHit, false, `${b} after ${a}`);
      assert.deepStrictEqual(second, fresh(b), b);
    }
  });

  it('whatever the literals, a classification from the cache is the one a parse gives', () => {
    const templates = [
      (x: string, _y: string) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${x}`,
      (x: string, y: string) => `DELETE FROM t WHERE ${x} = ${y}`,
      (x: string, y: string) => `DELETE FROM t WHERE id = ${x} OR ${x} = ${y}`,
      (x: string, y: string) => `SELECT a FROM t WHERE a = ${x} AND ${y} <> b`,
      (x: string, _y: string) => `SET standard_conforming_strings = ${x}`,
      (x: string, y: string) => `SELECT set_config(${x}, ${y}, false)`,
      (x: string, _y: string) => `SELECT a, b FROM t ORDER BY ${x}`,
      (x: string, y: string) => `UPDATE t SET a = ${x} WHERE ${y} = ${y}`,
      (x: string, y: string) => `SELECT a FROM t WHERE a = ${x}; SELECT ${y}`,
    ];
    const literal = fc.oneof(
      fc.integer({ min: -3, max: 3 }).map(String),
      fc.constantFrom(
        "'on'",
        "'off'",
        "'client_encoding'",
        "'work_mem'",
        "'a'",
        "'a\\'",
        "'1'",
        '1.5',
        "E'\\\\'",
      ),
      fc.string({ maxLength: 6 }).map((s) => `'${s.replaceAll("'", "''")}'`),
    );
    const c = new SqlClassifier(parser);
    fc.assert(
      fc.property(fc.nat(templates.length - 1), literal, literal, (t, x, y) => {
        const sql = (templates[t] as (x: string, y: string) => string)(x, y);
        assert.deepStrictEqual(c.classify(sql), fresh(sql), sql);
      }),
      { numRuns: 400 },
    );
    assert.ok(c.stats.shapeHits > 0, 'some statements came from the cache by shape');
  });
});
