// The PostgreSQL guard at the extended protocol's Bind and Execute: a statement prepared
// earlier is judged again, and refused when the audit trail cannot take its event; a
// statement or portal the guard never saw is refused rather than run unaudited. Real
// PostgreSQL (the e2e global setup's) behind a real sidecar; the agent is a raw protocol
// client, because these are byte sequences a client library would not send on its own.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import { readSpoolDir } from '@chaperone/sidecar';
import { waitFor } from './process.ts';
import { type GuardedDatabase, startGuardedDatabase } from './sidecar-postgres-harness.ts';
import { errorCode, RawClient } from './sidecar-postgres-raw.ts';

/** Everything allowed: what is under test is what the guard sees, not which rule denies. */
const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: databases }
spec: { defaultAction: allow, rules: [] }
`;
/** The edit made while a session has a statement prepared. */
const NO_ORDERS = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: databases }
spec:
  defaultAction: allow
  rules:
    - { name: no-orders, match: { sql: { tables: [orders] } }, action: deny, message: orders are closed. }
`;

const { msg } = RawClient;
const NO_PARAMS = Buffer.from([0, 0, 0, 0, 0, 0]); // Bind: no formats, no parameters, no result formats
const bind = (portal: string, statement: string) => msg('B', portal, statement, NO_PARAMS);
const execute = (portal: string) => msg('E', portal, Buffer.from([0, 0, 0, 0]));
const kinds = (ms: [string, Buffer][]) => ms.map(([t]) => t);
const message = (ms: [string, Buffer][]) => ms.find(([t]) => t === 'E')?.[1].toString('latin1') ?? '';
const code = (ms: [string, Buffer][]) => errorCode(ms.find(([t]) => t === 'E')?.[1] ?? Buffer.alloc(0));

function events(db: GuardedDatabase): AuditEvent[] {
  return readSpoolDir(db.sidecar.spoolDir).filter((e) => e.chaperone.protocol === 'postgres');
}

async function ordersCount(db: GuardedDatabase): Promise<number> {
  return db.direct(async (c) => Number((await c.query('SELECT count(*) AS n FROM orders')).rows[0].n));
}

/** A database with three orders behind a sidecar of its own, for the tests of one describe. */
function guardedOrders(name: string, extraArgs: readonly string[] = []): () => GuardedDatabase {
  let db: GuardedDatabase | undefined;
  before(async () => {
    db = await startGuardedDatabase({
      name,
      pod: `agent-${name}`,
      policy: POLICY,
      extraArgs,
      setup: async (c) => {
        await c.query('CREATE TABLE orders (id int PRIMARY KEY, note text)');
        await c.query("INSERT INTO orders VALUES (1, 'a'), (2, 'b'), (3, 'c')");
      },
    });
  });
  after(async () => {
    await db?.stop();
  });
  return () => db as GuardedDatabase;
}

describe('PostgreSQL guard: Bind and Execute of what the guard did not see prepared', () => {
  const guarded = guardedOrders('pg-proto');

  // Fails if DISCARD PLANS made the guard forget prepared statements (session.ts #done clearing
  // on every DiscardStmt, sql-tree.ts not telling DISCARD ALL apart): the Bind would be refused.
  it('keeps prepared statements over DISCARD PLANS, and forgets them at DISCARD ALL as the server does', async () => {
    const db = guarded();
    const c = await RawClient.open(db.port, 'app');
    try {
      c.send(msg('P', 'k', 'DELETE FROM orders WHERE id = 1', 0), msg('S'));
      assert.deepEqual(kinds(await c.until('Z')), ['1', 'Z']);
      c.send(msg('Q', 'DISCARD PLANS'));
      assert.deepEqual(kinds(await c.until('Z')), ['C', 'Z']);
      c.send(bind('', 'k'), execute(''), msg('S'));
      const ran = await c.until('Z');
      assert.deepEqual(kinds(ran), ['2', 'C', 'Z']);
      const deletes = events(db).filter((e) => e.chaperone.sql?.statements[0]?.kind === 'DeleteStmt');
      assert.equal(deletes.length, 1, 'the DELETE run through the protocol has its event');
      assert.equal(deletes[0]?.chaperone.sql?.rows, 1);

      c.send(msg('Q', 'DISCARD ALL'));
      assert.deepEqual(kinds(await c.until('Z')), ['C', 'Z']);
      c.send(bind('', 'k'), execute(''), msg('S'));
      const refused = await c.until('Z');
      assert.deepEqual(kinds(refused), ['E', 'Z']);
      assert.equal(code(refused), '26000');
    } finally {
      c.close();
    }
  });

  // Fails if a Bind to an unknown statement name were passed on (the server's own error would
  // come back, with no chaperone rule and no audit event).
  it('refuses a Bind to a statement name it does not know, with an event', async () => {
    const db = guarded();
    const c = await RawClient.open(db.port, 'app');
    try {
      c.send(bind('', 'never_prepared'), execute(''), msg('S'));
      const refused = await c.until('Z');
      assert.deepEqual(kinds(refused), ['E', 'Z']);
      assert.equal(code(refused), '26000');
      assert.match(message(refused), /chaperone-sql-unknown-statement/);
      assert.ok(
        events(db).some(
          (e) =>
            e.chaperone.decision.rule === 'chaperone-sql-unknown-statement' &&
            e.chaperone.decision.action === 'deny',
        ),
      );
      c.send(msg('Q', 'SELECT 1'));
      assert.deepEqual(kinds(await c.until('Z')), ['T', 'D', 'C', 'Z'], 'the session goes on');
    } finally {
      c.close();
    }
  });

  // Fails if Execute of a portal the guard did not see bound were passed on: the cursor's rows
  // would come back with no event.
  it('refuses a protocol Execute of a cursor declared in SQL', async () => {
    const db = guarded();
    const c = await RawClient.open(db.port, 'app');
    try {
      c.send(msg('Q', 'BEGIN; DECLARE cur CURSOR FOR SELECT * FROM orders'));
      await c.until('Z');
      c.send(execute('cur'), msg('S'));
      const refused = await c.until('Z');
      assert.deepEqual(kinds(refused), ['E', 'Z']);
      assert.equal(code(refused), '34000');
      assert.match(message(refused), /chaperone-sql-unknown-portal/);
      c.send(msg('Q', 'ROLLBACK'));
      await c.until('Z');
    } finally {
      c.close();
    }
  });

  // Fails if Bind used the decision made at Parse (session.ts #bind not calling #decide again), or
  // one made at an earlier Bind under another policy (#bindDecision keeping an allow past a reload):
  // the prepared SELECT would still read orders after the policy denied them.
  it('judges a prepared statement again at Bind with the policy in force now', async () => {
    const db = guarded();
    const c = await RawClient.open(db.port, 'app');
    try {
      c.send(msg('P', 'k2', 'SELECT note FROM orders', 0), msg('S'));
      assert.deepEqual(kinds(await c.until('Z')), ['1', 'Z']);
      // Bound and run once while the policy allows it (twice: the second Bind reuses the allow).
      for (let i = 0; i < 2; i++) {
        c.send(bind('', 'k2'), execute(''), msg('S'));
        assert.equal(kinds(await c.until('Z')).at(-2), 'C');
      }
      writeFileSync(db.sidecar.policyFile, NO_ORDERS);
      await waitFor(
        async () => {
          c.send(msg('Q', 'SELECT count(*) FROM orders'));
          return code(await c.until('Z')) === '42501';
        },
        { what: 'the policy denying orders to apply', timeoutMs: 10_000 },
      );
      c.send(bind('', 'k2'), execute(''), msg('S'));
      const refused = await c.until('Z');
      assert.deepEqual(kinds(refused), ['E', 'Z']);
      assert.equal(code(refused), '42501');
      assert.match(message(refused), /orders are closed/);
    } finally {
      c.close();
      writeFileSync(db.sidecar.policyFile, POLICY);
    }
  });
});

describe('PostgreSQL guard: fail closed at Bind and Execute', () => {
  // The smallest spool allowed; no collector takes events off it, so it fills.
  const guarded = guardedOrders('pg-failclosed', ['--spool-max-bytes', '65536']);

  // Fails without the auditRefusal check at Execute (the bound DELETE would run: 2 rows left)
  // or at Bind (the second Bind/Execute would run).
  it('does not run a statement prepared earlier while the spool cannot take its event', async () => {
    const db = guarded();
    const a = await RawClient.open(db.port, 'app');
    const b = await RawClient.open(db.port, 'app');
    try {
      a.send(
        msg('Q', 'BEGIN'),
        msg('P', 'del', 'DELETE FROM orders WHERE id = 1', 0),
        bind('p', 'del'),
        msg('S'),
      );
      assert.deepEqual(kinds(await a.until('Z', 2)), ['C', 'Z', '1', '2', 'Z']);
      let full = false;
      for (let i = 0; i < 500 && !full; i++) {
        b.send(msg('Q', 'SELECT 1'));
        full = code(await b.until('Z')) === '53000';
      }
      assert.ok(full, 'the spool filled up and simple queries are refused');
      a.send(execute('p'), msg('S'));
      const atExecute = await a.until('Z');
      assert.equal(code(atExecute), '53000', 'refused at Execute');
      a.send(msg('Q', 'ROLLBACK'));
      await a.until('Z');
      a.send(bind('', 'del'), execute(''), msg('S'));
      assert.equal(code(await a.until('Z')), '53000', 'refused at Bind');
    } finally {
      a.close();
      b.close();
    }
    assert.equal(await ordersCount(db), 3);
  });
});
