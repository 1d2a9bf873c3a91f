// The PostgreSQL guard's knowledge of the session's prepared statements and portals under
// pipelines (session.ts #change, #latest, #namesGate, #parsed, #sendBind): every Bind, Execute and SQL EXECUTE must be judged by what the server runs under
// that name when it runs it, or be refused. With users.password masked, `CREATE TABLE … AS
// EXECUTE name` judged as a harmless statement while the server runs a plain read of the masked
// column copies the passwords into a table no mask names. Real PostgreSQL (the e2e global
// setup's) behind a real sidecar; the agent is a raw protocol client, because these are byte
// sequences a client library would not send on its own.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from './process.ts';
import {
  type GuardedDatabase,
  MASK_USER_PASSWORDS,
  startGuardedDatabase,
  tableExists,
  usersWithCanary,
} from './sidecar-postgres-harness.ts';
import { errorCode, RawClient } from './sidecar-postgres-raw.ts';

const CANARY = 'canary-names-5d13a8';

const { msg } = RawClient;
const kinds = (ms: [string, Buffer][]) => ms.map(([t]) => t);
const codes = (ms: [string, Buffer][]) => ms.filter(([t]) => t === 'E').map(([, b]) => errorCode(b));
/** Close of a prepared statement. */
const closeStatement = (name: string) => msg('C', Buffer.from('S'), name);

describe('PostgreSQL guard: what a name holds when the server runs it', () => {
  let db: GuardedDatabase;
  before(async () => {
    db = await startGuardedDatabase({
      name: 'pg-names',
      pod: 'agent-pg-names',
      policy: MASK_USER_PASSWORDS,
      setup: usersWithCanary(CANARY),
    });
  });
  after(async () => {
    await db?.stop();
  });

  /**
   * Has the sidecar's catalog answer for users cached, so that mask review of a statement naming it
   * ends before the server answers what was sent ahead of it (an uncached lookup holds the agent's
   * later messages, which orders them behind those answers by chance).
   */
  async function warm(c: RawClient): Promise<void> {
    c.send(msg('Q', 'SELECT password FROM users WHERE false'));
    assert.deepEqual(codes(await c.until('Z')), []);
  }

  /** Whether `table` exists and holds the canary (asked straight of the server). */
  async function copiedCanary(table: string): Promise<boolean> {
    if (!(await tableExists(db, table))) return false;
    return db.direct(async (d) => JSON.stringify((await d.query(`TABLE ${table}`)).rows).includes(CANARY));
  }

  // Fails if a protocol Close and Parse did not count as changes of their name: the PREPARE's
  // completion (#done) would take its statement for the name although the Parse sent behind it
  // replaced it on the server, and the guard would hold the harmless statement for good.
  it('does not take a PREPARE answered after a Close and a Parse of the same name sent behind it', async () => {
    const c = await RawClient.open(db.port, 'app');
    try {
      await warm(c);
      c.send(
        msg('Q', 'PREPARE swapped AS SELECT 1 AS id'),
        closeStatement('swapped'),
        msg('P', 'swapped', 'SELECT password FROM users', 0),
        msg('S'),
      );
      assert.deepEqual(kinds(await c.until('Z', 2)), ['C', 'Z', '3', '1', 'Z']);
      c.send(msg('Q', 'CREATE TABLE swapped_copy AS EXECUTE swapped'));
      const answer = await c.until('Z');
      assert.equal(await copiedCanary('swapped_copy'), false, 'the passwords were not copied');
      assert.equal(codes(answer)[0], '42501', 'the copy of what the name holds is refused');
    } finally {
      c.close();
    }
  });

  // Fails without #namesGate: the guard takes a Parse's statement for its name when it is sent, and
  // the server refuses a named Parse whose name is in use (42P05), keeping the old statement. Within
  // the Parse's own batch the server discards everything up to Sync, but what follows the Sync runs
  // against the old statement, so it must wait for the Parse's answer.
  it('does not judge an EXECUTE sent after the Sync of a refused Parse by the refused statement', async () => {
    const c = await RawClient.open(db.port, 'app');
    try {
      c.send(msg('Q', 'PREPARE held AS SELECT password FROM users'));
      assert.deepEqual(codes(await c.until('Z')), []);
      c.send(
        msg('P', 'held', 'SELECT 1 AS id', 0),
        msg('S'),
        msg('Q', 'CREATE TABLE held_copy AS EXECUTE held'),
      );
      const answers = await c.until('Z', 2);
      assert.equal(await copiedCanary('held_copy'), false, 'the passwords were not copied');
      assert.equal(codes(answers)[0], '42P05', 'the server refuses the Parse: the name is in use');
      assert.equal(codes(answers)[1], '42501', 'the copy of what the name holds is refused');
    } finally {
      c.close();
    }
  });

  // Fails if #parsed put back what a refused Parse's name held before whatever was sent after the
  // Parse: here `DEALLOCATE undone; PREPARE undone AS …` is on its way (held by a lock), and the
  // EXECUTE the agent sends when the refusal arrives would be judged by the old statement.
  it('does not put back the old statement of a refused Parse over a PREPARE sent after it', async () => {
    const c = await RawClient.open(db.port, 'app');
    const lock = await RawClient.direct(db.database.url);
    try {
      await warm(c);
      c.send(msg('Q', 'SELECT pg_advisory_lock(4242) WHERE false'));
      assert.deepEqual(codes(await c.until('Z')), []);
      lock.send(msg('Q', 'SELECT pg_advisory_lock(4242)'));
      await lock.until('Z');
      c.send(msg('Q', 'PREPARE undone AS SELECT 1 AS id'));
      assert.deepEqual(codes(await c.until('Z')), []);
      c.send(
        msg('P', 'undone', 'SELECT 2 AS id', 0),
        msg('S'),
        msg(
          'Q',
          'SELECT pg_advisory_lock(4242); DEALLOCATE undone; PREPARE undone AS SELECT password FROM users',
        ),
      );
      const refused = await c.until('Z');
      assert.deepEqual(codes(refused), ['42P05'], 'the server refuses the Parse: the name is in use');
      // The query string waits for the lock on the server, so the PREPARE is unanswered while the
      // copy arrives. The guard must not judge the copy by the statement the refused Parse left
      // behind: it holds it until the server has answered. The lock is let go once the server is
      // seen waiting on it.
      c.send(
        msg('Q', 'CREATE TABLE undone_copy AS EXECUTE undone'),
        RawClient.bind('', 'undone_marker'),
        msg('S'),
      );
      await waitFor(
        async () =>
          db.direct(
            async (d) =>
              (await d.query("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))
                .rowCount === 1,
          ),
        { what: 'the query string to wait for the advisory lock', timeoutMs: 10_000 },
      );
      lock.send(msg('Q', 'SELECT pg_advisory_unlock(4242)'));
      await lock.until('Z');
      const answers = await c.until('Z', 3);
      assert.equal(await copiedCanary('undone_copy'), false, 'the passwords were not copied');
      assert.equal(codes(answers)[0], '42501', 'the copy of what the name holds is refused');
    } finally {
      c.close();
      lock.close();
    }
  });

  // Fails if a portal the server refused to bind kept the Bind's statement (#sendBind): a named
  // portal's name in use (42P03), here by a cursor declared WITH HOLD, leaves the server's portal as
  // it was, and the Execute after the Sync would be judged as `SELECT 1 AS id` (and recorded so)
  // while the server runs the cursor's read of users.
  it('does not judge an Execute of a portal by a Bind the server refused', async () => {
    const c = await RawClient.open(db.port, 'app');
    try {
      await warm(c);
      c.send(msg('Q', 'DECLARE held_cur CURSOR WITH HOLD FOR SELECT id, password FROM users ORDER BY id'));
      assert.deepEqual(codes(await c.until('Z')), []);
      c.send(msg('P', 'one', 'SELECT 1 AS id', 0), RawClient.bind('held_cur', 'one'), msg('S'));
      const bound = await c.until('Z');
      assert.deepEqual(codes(bound), ['42P03'], 'the server refuses the Bind: the portal name is in use');
      c.send(RawClient.execute('held_cur'), msg('S'));
      const ran = await c.until('Z');
      assert.ok(
        !kinds(ran).includes('D'),
        `no row of the cursor comes back as the Execute's (${kinds(ran)})`,
      );
      assert.equal(codes(ran)[0], '34000', 'the Execute of a portal the guard does not know is refused');
      c.send(msg('Q', 'CLOSE held_cur'));
      await c.until('Z');
    } finally {
      c.close();
    }
  });
});
