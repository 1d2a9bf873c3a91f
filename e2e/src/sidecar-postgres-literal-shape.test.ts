// The classification cache by literal shape against the real PostgreSQL: a query string that
// differs from one already judged only in its literals reuses that judgement, so anything else
// that differs must make it judged afresh. Quoted names are read whole: "case file" and
// "case  file" (two spaces) are different tables to the server, though the audit text (white
// space collapsed) writes them alike.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { type GuardedDatabase, noDropPolicy, startGuardedDatabase } from './sidecar-postgres-harness.ts';

const CLOSED = 'that table is closed to agents.';
const POLICY = noDropPolicy(
  'literal-shape',
  `    - name: closed-table
      match: { protocols: [postgres], sql: { tables: ["case  file"] } }
      action: deny
      message: ${CLOSED}
`,
);

let db: GuardedDatabase;

before(async () => {
  db = await startGuardedDatabase({
    name: 'pg-shape',
    pod: 'agent-pg-shape',
    policy: POLICY,
    setup: async (c) => {
      await c.query('CREATE TABLE "case file" (id int PRIMARY KEY, note text)');
      await c.query(`INSERT INTO "case file" VALUES (1, 'open note')`);
      await c.query('CREATE TABLE "case  file" (id int PRIMARY KEY, note text)');
      await c.query(`INSERT INTO "case  file" VALUES (2, 'closed note')`);
    },
  });
});

after(async () => {
  await db?.stop();
});

describe('PostgreSQL guard: the classification cache by literal shape', () => {
  // Fails if the shape key were the audit text alone (sql-literal-shape.ts literalShapeKey): the
  // second query would reuse the first one's tables and its allow, and the server would return the
  // closed table's row.
  it('judges a query on another quoted name afresh, though its audit text is the same', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: db.port, database: 'app', user: 'agent' });
    await c.connect();
    try {
      // No parameters: pg sends each as a simple-protocol Query.
      const open = await c.query('SELECT note FROM "case file" WHERE id = 1');
      assert.deepEqual(
        open.rows.map((r) => r.note),
        ['open note'],
      );
      const again = await c.query('SELECT note FROM "case file" WHERE id = 3');
      assert.equal(again.rowCount, 0, 'the same shape with another literal runs');
      await assert.rejects(
        c.query('SELECT note FROM "case  file" WHERE id = 2'),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, '42501');
          assert.match(err.message, new RegExp(CLOSED.replace('.', '\\.')));
          return true;
        },
      );
    } finally {
      await c.end();
    }
  });
});
