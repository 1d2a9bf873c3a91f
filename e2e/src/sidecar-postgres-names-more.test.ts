// The PostgreSQL guard's tracking of prepared statements and portals (session.ts #sending,
// #namesGate, #portalsEnded, #retargeted) beyond sidecar-postgres-names.test.ts: portals that code
// run on the server replaces, a pipeline the names gate must let go, and what masking of a portal of
// EXECUTE rests on. Real PostgreSQL behind a real sidecar; the agent is a
// raw protocol client sending byte sequences a client library would not.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type GuardedDatabase, noDropPolicy, startGuardedDatabase } from './sidecar-postgres-harness.ts';
import { errorCode, RawClient } from './sidecar-postgres-raw.ts';

const MASK_PASSWORDS = noDropPolicy(
  'databases',
  '    - { name: mask-passwords, match: { sql: { tables: [users], columns: [password] } }, action: mask }\n',
);
const CANARY = 'canary-names-more-8c41e2';

const { msg } = RawClient;
const kinds = (ms: [string, Buffer][]) => ms.map(([t]) => t);
const codes = (ms: [string, Buffer][]) => ms.filter(([t]) => t === 'E').map(([, b]) => errorCode(b));
const message = (ms: [string, Buffer][]) => ms.find(([t]) => t === 'E')?.[1].toString('latin1') ?? '';
/** Whether any message the agent got carries the canary. */
const leaked = (ms: [string, Buffer][]) => ms.some(([, b]) => b.toString('latin1').includes(CANARY));
/** Describe of a portal. */
const describePortal = (name: string) => msg('D', Buffer.from('P'), name);

describe('PostgreSQL guard: what a name holds when the server runs it (more)', () => {
  let db: GuardedDatabase;
  before(async () => {
    const setup = async (c: { query(sql: string): Promise<unknown> }) => {
      await c.query(`CREATE TABLE users (id int PRIMARY KEY, password text);
        INSERT INTO users VALUES (1, 'harmless'), (2, '${CANARY}')`);
    };
    db = await startGuardedDatabase({
      name: 'pg-names-more',
      pod: 'agent-names-more',
      policy: MASK_PASSWORDS,
      setup,
    });
  });
  after(async () => await db?.stop());

  // Pins: a portal of `EXECUTE q` gets its column names and types at the Bind but
  // runs what q holds at the Execute, and the server sends the new statement's rows under the old
  // description. The guard judges the Execute by the new q (#retargeted) and leaves masking to its
  // own Describe of the portal; that answer names each column's table and attribute from what q
  // holds when it is described (PostgreSQL looks the name up again), so the password column is
  // masked. If the guard took a portal's columns from anywhere else (its Bind's Describe, a cached
  // description), or stopped describing before each Execute, the passwords would go out unmasked.
  it('masks the rows of a portal of EXECUTE whose statement was prepared again after its Bind', async () => {
    const c = await RawClient.open(db.port, 'app');
    try {
      c.send(msg('Q', "PREPARE shape AS SELECT 'x'::text AS id"));
      assert.deepEqual(codes(await c.until('Z')), []);
      c.send(msg('Q', 'BEGIN'));
      await c.until('Z');
      c.send(msg('P', '', 'EXECUTE shape', 0), RawClient.bind('shaped', ''), msg('S'));
      assert.deepEqual(kinds(await c.until('Z')), ['1', '2', 'Z']);
      c.send(msg('Q', 'DEALLOCATE shape; PREPARE shape AS SELECT password FROM users ORDER BY id'));
      assert.deepEqual(codes(await c.until('Z')), [], 'a plain read of the masked column is prepared');
      c.send(describePortal('shaped'), RawClient.execute('shaped'), msg('S'));
      const ran = await c.until('Z');
      assert.equal(leaked(ran), false, `no password reaches the agent unmasked (${kinds(ran)})`);
      assert.equal(ran.filter(([t]) => t === 'D').length, 2, 'the rows come back, masked');
      c.send(msg('Q', 'ROLLBACK'));
      await c.until('Z');
    } finally {
      c.close();
    }
  });

  // Fails without the classifier's refusal of cursor statements in code bodies (sql-classifier.ts
  // closesCursors): the function would close a portal bound through the guard and declare a cursor
  // over users under its name, and the Execute would be judged and recorded as the Bind's statement.
  it('refuses a function that closes or declares a cursor by name', async () => {
    const c = await RawClient.open(db.port, 'app');
    try {
      for (const body of [
        'CREATE FUNCTION swapper() RETURNS int LANGUAGE sql AS $f$ CLOSE p; DECLARE p CURSOR FOR SELECT id FROM users; SELECT 1 $f$',
        'CREATE FUNCTION swapper() RETURNS void LANGUAGE plpgsql AS $f$ DECLARE p CURSOR FOR SELECT id FROM users; BEGIN CLOSE p; OPEN p; END $f$',
      ]) {
        c.send(msg('Q', body));
        const refused = await c.until('Z');
        assert.deepEqual(codes(refused), ['42501'], body);
        assert.match(message(refused), /declares or closes a cursor by name/);
      }
    } finally {
      c.close();
    }
  });

  /** Creates, straight on the server, a function the guard never saw that replaces cursor `name`. */
  async function adminSwapper(fn: string, name: string, hold: boolean): Promise<void> {
    await db.direct((d) =>
      d.query(
        `CREATE FUNCTION ${fn}() RETURNS int LANGUAGE plpgsql AS $f$ BEGIN
           ${hold ? '' : `EXECUTE 'CLOSE ${name}';`}
           EXECUTE 'DECLARE ${name} CURSOR ${hold ? 'WITH HOLD ' : ''}FOR SELECT id FROM users ORDER BY id';
           RETURN 1; END $f$`,
      ),
    );
  }

  // Fails without #portalsEnded (session.ts): the server drops a portal when its transaction ends
  // (here the implicit one, at Sync), and a function the guard never saw declares a cursor under the
  // same name; the guard would judge and record the Execute as the Bind's statement.
  it("forgets a portal when its transaction ends, so another cursor under its name is not run as the Bind's", async () => {
    const c = await RawClient.open(db.port, 'app');
    try {
      await adminSwapper('hold_swapper', 'after_commit', true);
      c.send(msg('P', '', 'SELECT 0 AS id', 0), RawClient.bind('after_commit', ''), msg('S'));
      assert.deepEqual(kinds(await c.until('Z')), ['1', '2', 'Z']);
      c.send(msg('Q', 'SELECT hold_swapper()'));
      assert.deepEqual(codes(await c.until('Z')), []);
      c.send(RawClient.execute('after_commit'), msg('S'));
      const ran = await c.until('Z');
      assert.equal(
        ran.filter(([t]) => t === 'D').length,
        0,
        `no row of the cursor comes back (${kinds(ran)})`,
      );
      assert.deepEqual(codes(ran), ['34000'], 'the Execute of a portal the guard does not know is refused');
      c.send(msg('Q', 'CLOSE after_commit'));
      await c.until('Z');
    } finally {
      c.close();
    }
  });

  // Fails without the check in session.ts #fromUpstream (#emptyPortalAnswered): an Execute of a portal
  // bound to an empty query carries no statement to judge or record, and a function the guard never
  // saw replaced the portal inside the transaction; its rows would reach the agent unrecorded.
  it('ends the session rather than pass on a result for a portal it knew as empty', async () => {
    const c = await RawClient.open(db.port, 'app');
    try {
      await adminSwapper('empty_swapper', 'was_empty', false);
      c.send(msg('Q', 'BEGIN'));
      await c.until('Z');
      c.send(msg('P', '', '', 0), RawClient.bind('was_empty', ''), msg('S'));
      assert.deepEqual(kinds(await c.until('Z')), ['1', '2', 'Z']);
      c.send(msg('Q', 'SELECT empty_swapper()'));
      assert.deepEqual(codes(await c.until('Z')), []);
      c.send(RawClient.execute('was_empty'), msg('S'));
      const ended = await c.untilClosed();
      assert.equal(
        ended.filter(([t]) => t === 'D').length,
        0,
        `no row of the cursor comes back (${kinds(ended)})`,
      );
      assert.deepEqual(codes(ended), ['08P01']);
      assert.match(message(ended), /portal was replaced behind the guard/);
    } finally {
      c.close();
    }
  });

  // Fails if messages held by #namesGate waited for a ReadyForQuery (session.ts #answered): #batch
  // counts a Query as the end of a batch when it is sent, but after an error in the extended protocol
  // the server discards a Query too, up to the Sync. The Bind behind it waits for the Parse's answer;
  // the answer comes (an error), a ReadyForQuery would not: the server waits for the Sync held behind
  // the Bind. PostgreSQL answers this pipeline with the Parse's error and one ReadyForQuery.
  it('does not hang a pipeline whose Query the server discards after an error', async () => {
    const c = await RawClient.open(db.port, 'app');
    try {
      c.send(
        msg('P', 'missing', 'SELECT * FROM no_such_table', 0),
        msg('Q', 'SELECT 1'),
        RawClient.bind('', 'missing'),
        RawClient.execute(''),
        msg('S'),
      );
      const answered = await c.until('Z');
      assert.deepEqual(codes(answered), ['42P01'], 'the Parse fails; the rest is discarded');
      c.send(msg('Q', 'SELECT 2 AS still_usable'));
      assert.deepEqual(codes(await c.until('Z')), [], 'the session goes on');
    } finally {
      c.close();
    }
  });
});
