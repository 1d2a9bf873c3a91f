// COPY FROM STDIN through the PostgreSQL guard, differentially: the same byte-level conversation
// (a raw protocol client, RawClient) is held with the real PostgreSQL of the e2e global setup
// directly and through a real `chaperone sidecar`, and the two transcripts must match message for
// message (types, SQLSTATEs, command tags, rows). The conversations send what the server treats
// specially in copy-in: a Sync and a Flush in the middle of COPY data (the server ignores them),
// and a Parse or a Query in the middle of COPY data (the server fails the copy, the message does
// not run, and the server ends the connection: "protocol synchronization was lost"). After each
// conversation that leaves the session open, the guard must still know which answer belongs to
// which request: a masked column's value must stay masked in the COPY TO STDOUT that follows, and
// every statement's audit event must carry its own command's row count.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import { readSpoolDir } from '@chaperone/sidecar';
import {
  type GuardedDatabase,
  noDropPolicy,
  startGuardedDatabase,
  tableExists,
} from './sidecar-postgres-harness.ts';
import { errorCode, RawClient } from './sidecar-postgres-raw.ts';

const POLICY = noDropPolicy(
  'copy',
  `    - name: mask-passwords
      match: { sql: { tables: [users], columns: [password] } }
      action: mask
`,
);
const CANARY = 'canary-copy-7d21e0';

const { msg, bind, execute } = RawClient;
const copyData = (text: string) => msg('d', Buffer.from(text));

/** What a client sees, comparable across connections: types, SQLSTATEs, tags and rows (no notices or settings). */
function transcript(ms: [string, Buffer][]): string[] {
  return ms
    .filter(([t]) => t !== 'N' && t !== 'S')
    .map(([t, b]) =>
      t === 'E' ? `E ${errorCode(b)}` : t === 'C' || t === 'D' ? `${t} ${b.toString('latin1')}` : t,
    );
}

/** One conversation: `t` is the table it copies into (one per connection, so both start empty). */
type Conversation = (c: RawClient, t: string) => Promise<string[]>;

const CONVERSATIONS: [string, Conversation][] = [
  [
    'a Sync and a Flush in the middle of an extended-protocol COPY are ignored, as the server does',
    async (c, t) => {
      c.send(msg('P', '', `COPY ${t} (a) FROM STDIN`, 0), bind(), execute(), msg('S'));
      const started = await c.until('G');
      c.send(copyData('1\n'), msg('S'), msg('H'), copyData('2\n'), msg('c'), msg('S'));
      const ended = await c.until('Z');
      c.send(msg('Q', `SELECT count(*) FROM ${t}`));
      return transcript([...started, ...ended, ...(await c.until('Z'))]);
    },
  ],
  [
    'a Parse in the middle of an extended-protocol COPY fails the copy and does not run',
    async (c, t) => {
      c.send(msg('P', '', `COPY ${t} (a) FROM STDIN`, 0), bind(), execute(), msg('S'));
      const started = await c.until('G');
      c.send(copyData('3\n'), msg('P', '', `DROP TABLE ${t}`, 0), bind(), execute(), msg('S'));
      return transcript([...started, ...(await c.untilClosed())]);
    },
  ],
  [
    'a Query in the middle of a simple-protocol COPY fails the copy and does not run',
    async (c, t) => {
      c.send(msg('Q', `COPY ${t} (a) FROM STDIN`));
      const started = await c.until('G');
      c.send(copyData('4\n'), msg('Q', `DROP TABLE ${t}`));
      return transcript([...started, ...(await c.untilClosed())]);
    },
  ],
  [
    'COPY data, Sync and a statement sent before the server started the copy are read as the server reads them',
    async (c, t) => {
      c.send(
        msg('P', '', `COPY ${t} (a) FROM STDIN`, 0),
        bind(),
        execute(),
        msg('S'),
        copyData('5\n6\n'),
        msg('S'),
        msg('c'),
        msg('S'),
        msg('Q', `SELECT count(*) FROM ${t}`),
      );
      return transcript(await c.until('Z', 2));
    },
  ],
  [
    'two COPY FROM STDIN in one Query, the second started after the first ends',
    async (c, t) => {
      c.send(msg('Q', `COPY ${t} (a) FROM STDIN; COPY ${t} (a) FROM STDIN; SELECT count(*) FROM ${t}`));
      const first = await c.until('G');
      c.send(copyData('7\n'), msg('c'));
      const second = await c.until('G');
      c.send(copyData('8\n'), msg('S'), copyData('9\n'), msg('c'));
      return transcript([...first, ...second, ...(await c.until('Z'))]);
    },
  ],
];

function events(db: GuardedDatabase): AuditEvent[] {
  return readSpoolDir(db.sidecar.spoolDir).filter((e) => e.chaperone.protocol === 'postgres');
}

describe('PostgreSQL guard: COPY FROM STDIN, as the server reads it', () => {
  let db: GuardedDatabase;
  before(async () => {
    db = await startGuardedDatabase({
      name: 'pg-copy',
      pod: 'agent-pg-copy',
      policy: POLICY,
      setup: async (c) => {
        for (let i = 0; i < CONVERSATIONS.length; i++) {
          await c.query(`CREATE TABLE direct_${i} (a int)`);
          await c.query(`CREATE TABLE guarded_${i} (a int)`);
        }
        await c.query('CREATE TABLE users (id int, password text)');
        await c.query('INSERT INTO users VALUES (1, $1)', [CANARY]);
      },
    });
  });
  after(async () => {
    await db?.stop();
  });

  CONVERSATIONS.forEach(([name, conversation], i) => {
    // Fails if the guard passed a Sync sent during copy-in on and waited for its ReadyForQuery (or
    // judged a message the server consumes as a copy failure): its bookkeeping would then pair the
    // next statement with the wrong answer, and the COPY TO STDOUT below would leave the masked
    // column unmasked (its CopyOutResponse attributed to no statement).
    it(name, async () => {
      const direct = await RawClient.direct(db.database.url);
      const guarded = await RawClient.open(db.port, 'app');
      try {
        const want = await conversation(direct, `direct_${i}`);
        const got = await conversation(guarded, `guarded_${i}`);
        assert.deepEqual(got, want);
        const rows = async (t: string) =>
          db.direct(async (c) => (await c.query(`SELECT count(*)::int AS n FROM ${t}`)).rows[0].n as number);
        assert.equal(await rows(`guarded_${i}`), await rows(`direct_${i}`), 'the same rows were copied');
        if (got.at(-1) !== 'Z') return; // the server ended the session: nothing more to ask it

        guarded.send(msg('Q', 'COPY users TO STDOUT'));
        const copied = await guarded.until('Z');
        const data = copied.filter(([t]) => t === 'd').map(([, b]) => b.toString('utf8'));
        assert.equal(data.length, 1, 'the one row of users');
        assert.doesNotMatch(data.join(''), new RegExp(CANARY), 'the masked column stays masked');

        guarded.send(msg('Q', 'SELECT 41 + 1'));
        assert.deepEqual(transcript(await guarded.until('Z')), [
          'T',
          'D \u0000\u0001\u0000\u0000\u0000\u000242',
          'C SELECT 1\u0000',
          'Z',
        ]);
      } finally {
        direct.close();
        guarded.close();
      }
      const mine = events(db).filter((e) => e.chaperone.sql?.text?.includes(`guarded_${i}`));
      const counts = mine.filter((e) => e.chaperone.sql?.text?.startsWith('SELECT count'));
      assert.ok(counts.length >= 1, 'the count has its event');
      for (const e of counts) assert.equal(e.chaperone.sql?.rows, 1, 'the count returned one row');
      const copies = mine.filter((e) => e.chaperone.sql?.text?.startsWith('COPY'));
      assert.ok(copies.length >= 1, 'the COPY has its event');
    });
  });

  // Fails if the guard let the DROP sent during copy-in through unjudged after the copy failed on
  // its own: the table would be gone. (The server consumes the message while in copy-in; once the
  // copy failed on bad data, it reads the next Query as a statement — and so must the guard.)
  it('judges a statement the server reads after the copy failed on its own', async () => {
    const guarded = await RawClient.open(db.port, 'app');
    try {
      guarded.send(msg('Q', 'COPY guarded_0 (a) FROM STDIN'));
      await guarded.until('G');
      guarded.send(copyData('not a number\n'), msg('Q', 'DROP TABLE guarded_0'));
      const answers = transcript(await guarded.until('Z', 2));
      assert.equal(answers.filter((a) => a.startsWith('E ')).length, 2, answers.join(' | '));
      assert.ok(answers.includes('E 22P02') || answers.includes('E 08P01'), answers.join(' | '));
      assert.ok(answers.includes('E 42501') || answers.includes('E 08P01'), answers.join(' | '));
    } finally {
      guarded.close();
    }
    assert.ok(await tableExists(db, 'guarded_0'), 'the table is still there');
  });
});
