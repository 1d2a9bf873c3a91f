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
import pg from 'pg';
import { waitFor } from './process.ts';
import {
  type GuardedDatabase,
  MASK_USER_PASSWORDS,
  startGuardedDatabase,
  tableExists,
  usersWithCanary,
} from './sidecar-postgres-harness.ts';
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

/** Writes `policy` and waits until a read of orders on `c` is denied (or allowed), as `denied` says. */
async function usePolicy(db: GuardedDatabase, c: RawClient, policy: string, denied: boolean): Promise<void> {
  writeFileSync(db.sidecar.policyFile, policy);
  await waitFor(
    async () => {
      c.send(msg('Q', 'SELECT count(*) FROM orders'));
      return (code(await c.until('Z')) === '42501') === denied;
    },
    { what: `the policy ${denied ? 'denying' : 'allowing'} orders to apply`, timeoutMs: 10_000 },
  );
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
      await usePolicy(db, c, NO_ORDERS, true);
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

  // Fails if a Parse the server refused (the name is in use: 42P05) left the name taken for an empty
  // statement in the guard's books (session.ts #parsed not restoring #emptyPrepared): the Bind of the
  // DELETE still prepared under it would be forwarded undecided and unrecorded, and run although the
  // policy now denies orders.
  it('keeps judging a statement whose name a refused empty Parse tried to take', async () => {
    const db = guarded();
    const before = await ordersCount(db);
    const c = await RawClient.open(db.port, 'app');
    try {
      await usePolicy(db, c, POLICY, false);
      c.send(msg('P', 'k3', 'DELETE FROM orders WHERE id = 2', 0), msg('S'));
      assert.deepEqual(kinds(await c.until('Z')), ['1', 'Z']);
      await usePolicy(db, c, NO_ORDERS, true);
      c.send(msg('P', 'k3', '', 0), msg('S'));
      assert.equal(code(await c.until('Z')), '42P05', 'the server keeps the DELETE under its name');
      c.send(bind('', 'k3'), execute(''), msg('S'));
      const refused = await c.until('Z');
      assert.deepEqual(kinds(refused), ['E', 'Z']);
      assert.equal(code(refused), '42501');
      assert.match(message(refused), /orders are closed/);
    } finally {
      c.close();
      writeFileSync(db.sidecar.policyFile, POLICY);
    }
    assert.equal(await ordersCount(db), before);
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

/** The edit that masks users.password while a session has statements prepared (and a portal bound) that read it. */
const MASK_PASSWORDS = MASK_USER_PASSWORDS;
const CANARY = 'canary-reload-7c2e91';

describe('PostgreSQL guard: masks added after a statement was prepared', () => {
  let db: GuardedDatabase;
  before(async () => {
    db = await startGuardedDatabase({
      name: 'pg-remask',
      pod: 'agent-pg-remask',
      policy: POLICY,
      setup: usersWithCanary(CANARY),
    });
  });
  after(async () => {
    await db?.stop();
  });

  /** Writes `policy` and waits until a new connection's plain read of users.password shows it masked (or not). */
  async function reload(policy: string, masked: boolean): Promise<void> {
    writeFileSync(db.sidecar.policyFile, policy);
    await waitFor(
      async () => {
        const c = new pg.Client({ connectionString: `postgresql://agent@127.0.0.1:${db.port}/app` });
        await c.connect();
        try {
          const shown = (await c.query('SELECT password FROM users WHERE id = 1')).rows[0].password;
          return (shown !== 'harmless') === masked;
        } finally {
          await c.end();
        }
      },
      { what: `the policy ${masked ? 'masking' : 'not masking'} users.password to apply`, timeoutMs: 10_000 },
    );
  }

  // Fails without the check at Bind under the masks in force then (session.ts #bindAs → #maskedAgain):
  // node `pg` sends only Bind and Execute for a named statement it prepared before, and the expression
  // lower(password) has no column for the RowDescription masking to find, so the canary came back.
  it('checks a named prepared statement again at Bind when masks were added since its Parse', async () => {
    const c = new pg.Client({ connectionString: `postgresql://agent@127.0.0.1:${db.port}/app` });
    await c.connect();
    const leak = (id: number) =>
      c.query({ name: 'leak', text: 'SELECT lower(password) AS p FROM users WHERE id = $1', values: [id] });
    try {
      assert.deepEqual((await leak(1)).rows, [{ p: 'harmless' }]);
      await reload(MASK_PASSWORDS, true);
      const err = await leak(2).then(
        (r) =>
          assert.fail(
            `the statement ran under the new masks (the canary came back: ${JSON.stringify(r.rows).includes(CANARY)})`,
          ),
        (e: Error & { code?: string }) => e,
      );
      assert.equal(err.code, '42501');
      assert.match(err.message, /lower|password|mask/i);
      assert.match(err.message, /masks in force changed after the statement was prepared/);
      assert.doesNotMatch(err.message, new RegExp(CANARY));
    } finally {
      await c.end();
      await reload(POLICY, false);
    }
    const recorded = events(db).filter((e) => e.chaperone.sql?.text?.includes('lower(password)'));
    assert.ok(recorded.some((e) => e.chaperone.decision.rule === 'chaperone-sql-mask-unmaskable'));
    assert.ok(!JSON.stringify(recorded).includes(CANARY));
  });

  // Fails without the new decision at Execute (session.ts #execute → #rejudged, #maskedAgain): a
  // portal bound before the reload lives on in the transaction block, and its second Execute would
  // send the canary row.
  it('decides and checks a portal again at Execute when the masks changed since its Bind', async () => {
    const c = await RawClient.open(db.port, 'app');
    const received: Buffer[] = [];
    try {
      c.send(
        msg('Q', 'BEGIN'),
        msg('P', 'rows', 'SELECT lower(password) FROM users ORDER BY id', 0),
        bind('p', 'rows'),
        msg('E', 'p', Buffer.from([0, 0, 0, 1])),
        msg('S'),
      );
      const first = await c.until('Z', 2);
      received.push(...first.map(([, b]) => b));
      assert.deepEqual(kinds(first), ['C', 'Z', '1', '2', 'D', 's', 'Z']);
      await reload(MASK_PASSWORDS, true);
      c.send(execute('p'), msg('S'));
      const again = await c.until('Z');
      received.push(...again.map(([, b]) => b));
      assert.deepEqual(kinds(again), ['E', 'Z']);
      assert.equal(code(again), '42501');
      assert.match(message(again), /chaperone|mask/i);
      c.send(msg('Q', 'ROLLBACK'));
      await c.until('Z');
    } finally {
      c.close();
      await reload(POLICY, false);
    }
    assert.ok(!Buffer.concat(received).includes(CANARY), 'the canary never reached the client');
  });

  // Fails if a statement that runs another by name is bound (or executed) as judged at its Parse
  // (session.ts #retargeted): the server looks the name up when it runs, so CREATE TABLE … AS EXECUTE
  // of a harmless statement, re-prepared as a plain read of the masked column, would copy the
  // passwords into a table no mask names.
  it('judges a statement that runs another by name with what that name holds when it runs', async () => {
    const c = await RawClient.open(db.port, 'app');
    try {
      await reload(MASK_PASSWORDS, true);
      c.send(msg('Q', 'PREPARE src AS SELECT 1 AS id'));
      assert.equal(code(await c.until('Z')), undefined);
      c.send(
        msg('P', 'copy', 'CREATE TABLE copied AS EXECUTE src', 0),
        msg('Q', 'BEGIN'),
        msg('P', 'copy2', 'CREATE TABLE copied2 AS EXECUTE src', 0),
        bind('p', 'copy2'),
        msg('S'),
      );
      assert.deepEqual(kinds(await c.until('Z', 2)), ['1', 'C', 'Z', '1', '2', 'Z']);
      c.send(msg('Q', 'DEALLOCATE src; PREPARE src AS SELECT password FROM users'));
      assert.equal(code(await c.until('Z')), undefined, 'a plain read of the masked column is prepared');
      // At Execute: the portal was bound while src was harmless.
      c.send(execute('p'), msg('S'));
      const atExecute = await c.until('Z');
      assert.equal(code(atExecute), '42501');
      assert.match(message(atExecute), /chaperone-sql-mask-unmaskable|masked/);
      c.send(msg('Q', 'ROLLBACK'));
      await c.until('Z');
      // At Bind: the statement was parsed while src was harmless.
      c.send(bind('', 'copy'), execute(''), msg('S'));
      const atBind = await c.until('Z');
      assert.deepEqual(kinds(atBind), ['E', 'Z']);
      assert.equal(code(atBind), '42501');
    } finally {
      c.close();
      await reload(POLICY, false);
    }
    assert.equal(await tableExists(db, 'copied'), false);
    assert.equal(await tableExists(db, 'copied2'), false);
  });

  // Fails if what a statement does to prepared statements were taken only when its answer comes
  // back (session.ts #sending): a Bind or an EXECUTE sent behind `DEALLOCATE src; PREPARE src AS …`
  // reaches the server after it, but would be judged by the old src — and copy the passwords.
  it('judges a Bind or EXECUTE sent behind a statement that prepares its name again by what the server runs', async () => {
    const c = await RawClient.open(db.port, 'app');
    try {
      await reload(MASK_PASSWORDS, true);
      c.send(msg('Q', 'PREPARE piped_src AS SELECT 1 AS id'));
      assert.equal(code(await c.until('Z')), undefined);
      c.send(msg('P', 'piped_copy', 'CREATE TABLE piped AS EXECUTE piped_src', 0), msg('S'));
      assert.deepEqual(kinds(await c.until('Z')), ['1', 'Z']);
      // All in one write: the guard reads them before the server answers the first.
      c.send(
        msg('Q', 'DEALLOCATE piped_src; PREPARE piped_src AS SELECT password FROM users'),
        bind('', 'piped_copy'),
        execute(''),
        msg('S'),
        msg('Q', 'CREATE TABLE piped2 AS EXECUTE piped_src'),
      );
      const answers = await c.until('Z', 3);
      const errors = answers.filter(([t]) => t === 'E').map(([, b]) => errorCode(b));
      assert.deepEqual(errors, ['42501', '42501'], 'the Bind and the EXECUTE are both refused');
    } finally {
      c.close();
      await reload(POLICY, false);
    }
    assert.equal(await tableExists(db, 'piped'), false);
    assert.equal(await tableExists(db, 'piped2'), false);
  });

  // Fails without the classifier's refusal of code bodies that touch prepared statements
  // (sql-classifier.ts #readSqlBody): the DO block would swap what src holds behind the guard.
  it('refuses server-side code that prepares, runs or drops prepared statements', async () => {
    const c = await RawClient.open(db.port, 'app');
    try {
      await reload(CODE_AND_MASKS, true);
      c.send(msg('Q', 'PREPARE body_src AS SELECT 1 AS id'));
      assert.equal(code(await c.until('Z')), undefined);
      for (const body of [
        'DO $$ BEGIN DEALLOCATE body_src; PREPARE body_src AS SELECT 2 AS id; END $$',
        'CREATE FUNCTION swap() RETURNS int LANGUAGE sql AS $f$ DEALLOCATE body_src; SELECT 1 $f$',
      ]) {
        c.send(msg('Q', body));
        const refused = await c.until('Z');
        assert.equal(code(refused), '42501', body);
        assert.match(message(refused), /prepares, runs or drops a prepared statement/);
      }
      c.send(msg('Q', 'EXECUTE body_src'));
      const ran = await c.until('Z');
      assert.equal(code(ran), undefined, 'the session and its prepared statement are as they were');
      assert.ok(!Buffer.concat(ran.map(([, b]) => b)).includes(CANARY));
    } finally {
      c.close();
      await reload(POLICY, false);
    }
  });

  // Fails if prepared statements were kept over dynamic SQL (session.ts #sending): the guard cannot
  // read what it ran, here a swap of k for an expression over the masked column.
  it('forgets every prepared statement when dynamic SQL ran, and refuses their Binds', async () => {
    const c = await RawClient.open(db.port, 'app');
    const received: Buffer[] = [];
    try {
      await reload(CODE_AND_MASKS, true);
      c.send(msg('P', 'k', 'SELECT 1 AS id', 0), msg('S'));
      assert.deepEqual(kinds(await c.until('Z')), ['1', 'Z']);
      c.send(
        msg(
          'Q',
          "DO $$ BEGIN EXECUTE 'DEALLOCATE k'; EXECUTE 'PREPARE k AS SELECT lower(password) FROM users'; END $$",
        ),
      );
      assert.equal(code(await c.until('Z')), undefined, 'a rule allows dynamic SQL here');
      c.send(bind('', 'k'), execute(''), msg('S'));
      const refused = await c.until('Z');
      received.push(...refused.map(([, b]) => b));
      assert.deepEqual(kinds(refused), ['E', 'Z']);
      assert.equal(code(refused), '26000');
      assert.match(message(refused), /prepare it again/);
      c.send(msg('Q', 'EXECUTE k'));
      const executed = await c.until('Z');
      received.push(...executed.map(([, b]) => b));
      assert.equal(code(executed), '42501');
    } finally {
      c.close();
      await reload(POLICY, false);
    }
    assert.ok(!Buffer.concat(received).includes(CANARY), 'the canary never reached the client');
  });
});

/** MASK_PASSWORDS, with DO blocks and dynamic SQL allowed. */
const CODE_AND_MASKS = `${MASK_PASSWORDS}    - { name: code, match: { sql: { statements: [do, dynamic-sql, prepare, deallocate, select] } }, action: allow }
`;
