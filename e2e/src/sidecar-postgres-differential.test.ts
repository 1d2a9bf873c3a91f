// How the sidecar splits and reads a query string against what the real PostgreSQL server runs
// for the same string. Every string goes, as one simple-protocol Query, through a real
// `chaperone sidecar` to the e2e PostgreSQL; what the sidecar judged comes from its audit events
// (one per statement it read, each with its node type and tables), what the server ran from two
// places: the results it sent back, in order (the command tag of each statement it ran, and a
// marker the statement returns: `k`, which each table m<k> holds as its default, so a row tells
// which table the statement touched), and the tables themselves, read directly at the end (every
// INSERT the server ran left a row). Either the sidecar refused the string — and then the server
// ran none of it — or the server ran exactly the statements the sidecar judged: the same number,
// kinds and tables, in the same order.
//
// The strings: known tricky ones (the `SELECT 1; COMMIT; DROP SCHEMA public CASCADE` bypass,
// standard_conforming_strings games, a backslash before a quote), and strings generated from a
// fixed seed: one to four statements whose literals are standard strings with '' and ;, E''
// strings with escapes, U&'' strings (with and without UESCAPE), dollar quotes ($$ and $tag$)
// holding ; and other quotes; comments -- and /* nested /* */ */ between tokens, holding text that
// looks like statements and psql meta-commands; quoted identifiers holding ; and ""; identifiers
// holding $; separators ; ;; and ;\n; and some statements the policy denies or the parser
// refuses. CHAPERONE_DIFF_RUNS=5000 runs more (default 300), CHAPERONE_DIFF_SEED=<n> other ones.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import { readSpoolDir } from '@chaperone/sidecar';
import fc from 'fast-check';
import pg from 'pg';
import { type GuardedDatabase, startGuardedDatabase } from './sidecar-postgres-harness.ts';

const SEED = Number.parseInt(process.env.CHAPERONE_DIFF_SEED ?? '20260115', 10);
const RUNS = Number.parseInt(process.env.CHAPERONE_DIFF_RUNS ?? '300', 10);
/** Tables m0 … m(TABLES-1), each with a column k whose default is its number, and one seed row. */
const TABLES = 8;

const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: differential }
spec:
  defaultAction: allow
  rules:
    - name: no-destruction
      match: { protocols: [postgres], sql: { statements: [drop, truncate, delete] } }
      action: deny
`;

const COMMAND: Record<string, string> = { SelectStmt: 'SELECT', InsertStmt: 'INSERT', UpdateStmt: 'UPDATE' };

let guarded: GuardedDatabase;
let port: number;

// ---------------------------------------------------------------------------
// The generator

/** Text that looks like SQL, quoting and psql meta-commands, to hide in literals, comments and identifiers. */
const PIECES = [
  ';',
  ';;',
  "'",
  '"',
  '--',
  '/*',
  '*/',
  '$$',
  '$a$',
  '$1',
  '\\',
  '\\\\',
  ' DROP TABLE m0; ',
  'SELECT k FROM m1 LIMIT 1;',
  "INSERT INTO m2 (note) VALUES ('x');",
  '\\gexec',
  '\\! echo pwned',
  '\\;',
  "E'",
  "U&'",
  'x',
  'é',
  '😀',
  '\n',
  ' ',
  'seedling',
];
const content = fc.array(fc.constantFrom(...PIECES), { maxLength: 5 }).map((a) => a.join(''));

/** A standard string: quotes doubled; backslashes are plain characters (standard_conforming_strings on). */
const standardString = content.map((c) => `'${c.replaceAll("'", "''")}'`);

/** An E'' string: its content escaped, with escape sequences between. */
const escapeString = fc
  .array(
    fc.oneof(
      content.map((c) => c.replaceAll('\\', '\\\\').replaceAll("'", "\\'")),
      fc.constantFrom("\\'", "''", '\\\\', '\\n', '\\t', '\\x41', '\\101', '\\u00e9', '\\U0001F600', '\\;'),
    ),
    { maxLength: 4 },
  )
  .map((parts) => `E'${parts.join('')}'`);

/** A U&'' string with \\XXXX escapes, or with another escape character named by UESCAPE. */
const unicodeString = fc
  .tuple(content, fc.constantFrom('\\', '!'), fc.constantFrom('0041', '+01F600', '003B', '0027'))
  .map(([c, esc, code]) => {
    const body = c.replaceAll(esc, esc + esc).replaceAll("'", "''");
    const s = `U&'${body}${esc}${code}'`;
    return esc === '\\' ? s : `${s} UESCAPE '${esc}'`;
  });

/** A dollar-quoted string whose tag does not occur in its content. */
const dollarString = fc.tuple(content, fc.constantFrom('', 'a', 'tag_1')).map(([c, tag]) => {
  // The closing tag must be the first occurrence of the tag after the opening one.
  const closesEarly = (t: string) => `${c}$${t}$`.indexOf(`$${t}$`) !== c.length;
  let t: string = tag;
  for (let i = 0; closesEarly(t); i++) t = `q${i}`;
  return `$${t}$${c}$${t}$`;
});

const literal = fc.oneof(standardString, escapeString, unicodeString, dollarString);

const noComment = (c: string) => c.replaceAll('/*', '').replaceAll('*/', '');
/** Between two tokens: white space or comments. */
const gap = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(' ', '\n', '\t', '  ') },
  { weight: 1, arbitrary: content.map((c) => ` -- ${c.replaceAll('\n', ' ')}\n`) },
  { weight: 1, arbitrary: content.map((c) => ` /* ${noComment(c)} */ `) },
  { weight: 1, arbitrary: content.map((c) => ` /* a /* ${noComment(c)} */ ; */ `) },
);

const table = fc.integer({ min: 0, max: TABLES - 1 });
const alias = fc.oneof(
  fc.constant(''),
  content
    .filter((c) => c.length > 0 && Buffer.byteLength(c) < 60)
    .map((c) => ` AS "${c.replaceAll('"', '""')}"`),
  fc.constantFrom(' AS a$$b', ' AS k$1', ' AS "$$"'),
);

/** A statement and what it must do: run (returning its table's k) or make the string refused. */
interface Unit {
  readonly sql: string;
  readonly refused: boolean;
}

const select = fc.tuple(table, alias, literal, gap, gap).map(
  ([k, a, lit, g1, g2]): Unit => ({
    sql: `SELECT${g1}k${a} FROM m${k}${g2}WHERE note <> ${lit} LIMIT 1`,
    refused: false,
  }),
);
const insert = fc.tuple(table, literal, gap).map(
  ([k, lit, g]): Unit => ({
    sql: `INSERT INTO m${k} (note) VALUES (${lit})${g}RETURNING k`,
    refused: false,
  }),
);
const update = fc.tuple(table, literal, gap).map(
  ([k, lit, g]): Unit => ({
    sql: `UPDATE m${k} SET note = note WHERE note = 'seed' AND ${lit} IS NOT NULL${g}RETURNING k`,
    refused: false,
  }),
);
const denied = fc.oneof(
  fc
    .tuple(table, literal)
    .map(([k, lit]): Unit => ({ sql: `DELETE FROM m${k} WHERE note = ${lit}`, refused: true })),
  table.map((k): Unit => ({ sql: `DROP TABLE m${k}`, refused: true })),
  table.map((k): Unit => ({ sql: `TRUNCATE m${k}`, refused: true })),
  fc.constant<Unit>({ sql: 'SET standard_conforming_strings = off', refused: true }),
);
const unit = fc.oneof(
  { weight: 4, arbitrary: select },
  { weight: 3, arbitrary: insert },
  { weight: 2, arbitrary: update },
  { weight: 1, arbitrary: denied },
);
const separator = fc.constantFrom(';', ';;', ' ; ', ';\n', '; -- ; DROP TABLE m0\n', ';/* ; */', ';\n;\n');
const ending = fc.constantFrom('', ';', ' -- the end; DROP TABLE m1', ' /* end */', '\n', ';;');

interface Case {
  readonly text: string;
  /** Whether the sidecar must refuse it (a denied statement in it); else it may still refuse. */
  readonly mustRefuse: boolean;
}

const generated: fc.Arbitrary<Case> = fc
  .tuple(
    fc.array(unit, { minLength: 1, maxLength: 4 }),
    fc.array(separator, { minLength: 4, maxLength: 4 }),
    gap,
    ending,
    // Something left open at the end: the parser refuses the whole string.
    fc.constantFrom('', '', '', '', '', '', '', '', " '", ' /*', ' $$', ' "'),
  )
  .map(([units, seps, lead, end, broken]) => ({
    text: `${lead}${units.map((u, i) => (i === 0 ? u.sql : `${seps[i - 1]}${u.sql}`)).join('')}${broken}${end}`,
    mustRefuse: units.some((u) => u.refused) || broken !== '',
  }));

/** Inputs known to split differently under a careless reading. */
const KNOWN: readonly Case[] = [
  { text: 'SELECT 1; COMMIT; DROP SCHEMA public CASCADE', mustRefuse: true },
  { text: 'SELECT k FROM m1 LIMIT 1; -- ; DROP TABLE m2', mustRefuse: false },
  { text: "SELECT k FROM m2 WHERE note <> 'a'';' LIMIT 1; SELECT k FROM m3 LIMIT 1", mustRefuse: false },
  { text: "SELECT k FROM m2 WHERE note <> E'a\\'; DROP TABLE m1; --' LIMIT 1", mustRefuse: false },
  // A backslash before a quote: one string with standard_conforming_strings on, an unterminated one off.
  { text: "SELECT k FROM m2 WHERE note <> 'a\\'; DROP TABLE m1; --' LIMIT 1", mustRefuse: true },
  { text: "SET standard_conforming_strings = off; SELECT 'a\\'; DROP TABLE m1; --'", mustRefuse: true },
  {
    text: "SELECT set_config('standard_conforming_strings', 'off', false); SELECT 'a\\'; DROP TABLE m3; --'",
    mustRefuse: true,
  },
  { text: 'SELECT k FROM m3 WHERE note <> $$;$$ LIMIT 1', mustRefuse: false },
  { text: 'SELECT k FROM m3 WHERE note <> $a$ $$ ; DROP TABLE m0; $$ $a$ LIMIT 1', mustRefuse: false },
  { text: 'SELECT k AS "x;y" FROM m4 LIMIT 1; SELECT k AS """;" FROM m5 LIMIT 1', mustRefuse: false },
  { text: '/* /* nested */ ; DROP TABLE m1; */ SELECT k FROM m6 LIMIT 1', mustRefuse: false },
  { text: "SELECT k FROM m7 WHERE note <> U&'\\0041;' LIMIT 1", mustRefuse: false },
  {
    text: "SELECT k FROM m7 WHERE note <> U&'!0027; DROP TABLE m1; --' UESCAPE '!' LIMIT 1",
    mustRefuse: false,
  },
  { text: ';;;', mustRefuse: false },
  { text: 'SELECT k FROM m0 LIMIT 1;;;SELECT k FROM m1 LIMIT 1', mustRefuse: false },
  {
    text: 'SELECT k AS a$$b FROM m1 LIMIT 1; SELECT k FROM m2 WHERE note <> $$x;$$ LIMIT 1',
    mustRefuse: false,
  },
  { text: 'SELECT k FROM m1 LIMIT 1 -- no newline at the end', mustRefuse: false },
  { text: 'SELECT k FROM m1 LIMIT 1 \\gexec', mustRefuse: true },
  {
    text: "SELECT k FROM m4 LIMIT 1; /* \\! rm -rf / */ INSERT INTO m4 (note) VALUES ('\\g') RETURNING k",
    mustRefuse: false,
  },
  { text: "SELECT k FROM m5 WHERE note <> 'unterminated LIMIT 1", mustRefuse: true },
  { text: 'SELECT k FROM m5 LIMIT 1; /* unterminated', mustRefuse: true },
];

// ---------------------------------------------------------------------------
// Running a string, and reading both sides

interface Outcome {
  readonly app: string;
  readonly text: string;
  readonly mustRefuse: boolean;
  /** What the server sent back, statement by statement: command tag and the k it returned. */
  readonly ran?: readonly string[];
  readonly error?: { code?: string; message: string };
}

async function run(c: Case, i: number): Promise<Outcome> {
  const app = `diff-${i}`;
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'agent',
    database: 'app',
    application_name: app,
  });
  await client.connect();
  try {
    // No parameters: node pg sends the string as one simple-protocol Query message.
    const r = (await client.query({ text: c.text, rowMode: 'array' })) as unknown as
      | pg.QueryArrayResult
      | pg.QueryArrayResult[];
    const ran = (Array.isArray(r) ? r : [r])
      .filter((x) => x.command !== null)
      .map((x) => `${x.command} ${x.rows.map((row) => `m${row[0]}`).join(',')}`);
    return { app, text: c.text, mustRefuse: c.mustRefuse, ran };
  } catch (err) {
    const e = err as pg.DatabaseError;
    return {
      app,
      text: c.text,
      mustRefuse: c.mustRefuse,
      error: { ...(e.code ? { code: e.code } : {}), message: e.message },
    };
  } finally {
    await client.end().catch(() => {});
  }
}

/** What the sidecar judged each statement to be: `COMMAND m<k>` from its node type and table. */
function judged(e: AuditEvent): string {
  const s = e.chaperone.sql?.statements[0];
  return `${COMMAND[s?.kind ?? ''] ?? s?.kind} ${(s?.tables ?? []).join(',')}`;
}

/** Compares every outcome with the sidecar's events; returns the disagreements and the counts. */
function compare(outcomes: readonly Outcome[]): {
  problems: string[];
  refused: number;
  agreed: number;
  inserts: number[];
} {
  const events = readSpoolDir(guarded.sidecar.spoolDir).filter((e) => e.chaperone.protocol === 'postgres');
  const byApp = new Map<string, AuditEvent[]>();
  for (const e of events) {
    const list = byApp.get(e.userAgent ?? '') ?? [];
    list.push(e);
    byApp.set(e.userAgent ?? '', list);
  }
  const problems: string[] = [];
  const inserts = Array.from({ length: TABLES }, () => 0);
  let refused = 0;
  let agreed = 0;
  for (const o of outcomes) {
    const evs = byApp.get(o.app) ?? [];
    const say = (what: string) => problems.push(`${JSON.stringify(o.text)}: ${what}`);
    const denied = evs.some((e) => e.chaperone.decision.action === 'deny');
    if (denied) {
      refused++;
      if (!evs.every((e) => e.chaperone.decision.action === 'deny'))
        say('some statements denied, others not');
      if (o.error?.code !== '42501')
        say(`refused by the sidecar, but the client got ${JSON.stringify(o.ran ?? o.error)}`);
      continue;
    }
    if (o.mustRefuse) say(`not refused; the sidecar judged ${JSON.stringify(evs.map(judged))}`);
    if (o.error) {
      say(
        `the sidecar judged ${JSON.stringify(evs.map(judged))} runnable, the server failed it: ${o.error.code} ${o.error.message}`,
      );
      continue;
    }
    const sidecar = evs.map(judged);
    if (JSON.stringify(sidecar) !== JSON.stringify(o.ran)) {
      say(`the sidecar judged ${JSON.stringify(sidecar)}, the server ran ${JSON.stringify(o.ran)}`);
      continue;
    }
    agreed++;
    for (const s of sidecar) {
      const m = /^INSERT m(\d+)$/.exec(s);
      if (m) (inserts[Number(m[1])] as number)++;
    }
  }
  return { problems, refused, agreed, inserts };
}

before(async () => {
  guarded = await startGuardedDatabase({
    name: 'pg-diff',
    pod: 'agent-diff',
    policy: POLICY,
    setup: async (c) => {
      for (let k = 0; k < TABLES; k++) {
        await c.query(
          `CREATE TABLE m${k} (k int NOT NULL DEFAULT ${k}, note text); INSERT INTO m${k} (note) VALUES ('seed')`,
        );
      }
    },
  });
  port = guarded.port;
});

after(() => guarded?.stop());

describe('PostgreSQL statement splitting: the sidecar against the server', () => {
  it(`agrees with the server, or refuses, on ${KNOWN.length} known and ${RUNS} generated strings (seed ${SEED})`, async (t) => {
    const corpus = [...KNOWN, ...fc.sample(generated, { seed: SEED, numRuns: RUNS })];
    const outcomes: Outcome[] = [];
    let next = 0;
    const worker = async () => {
      for (;;) {
        const i = next++;
        const c = corpus[i];
        if (c === undefined) return;
        outcomes[i] = await run(c, i);
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    const { problems, refused, agreed, inserts } = compare(outcomes);
    t.diagnostic(`${agreed} strings run as the sidecar judged them, ${refused} refused`);
    assert.deepEqual(problems, []);
    // Both outcomes occur in quantity, or the corpus proves little.
    assert.ok(
      agreed > corpus.length / 2 && refused > corpus.length / 20,
      `${agreed} agreed, ${refused} refused`,
    );
    // What the server ran, read from the tables themselves: every table is there, and holds one row
    // for each INSERT the sidecar judged and let through — none from a refused string.
    await guarded.direct(async (c) => {
      for (let k = 0; k < TABLES; k++) {
        const r = await c.query(`SELECT count(*)::int AS n FROM m${k} WHERE note IS DISTINCT FROM 'seed'`);
        assert.equal(r.rows[0].n, inserts[k], `rows inserted into m${k}`);
      }
    });
  });
});
