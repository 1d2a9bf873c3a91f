// client_encoding through the PostgreSQL guard, against the real PostgreSQL of the e2e global
// setup. The server reads a query string's bytes in its client_encoding when the message arrives;
// the guard reads them as UTF-8, the encoding it sets at start-up. A function that calls
// set_config('client_encoding', …) changes the server's reading without the guard seeing a SET,
// and the server reports the change (ParameterStatus) only before its next ReadyForQuery. So a
// client that pipelines a call to such a function and, behind it, a string whose bytes are an
// innocent SELECT in UTF-8 but a SELECT and a DROP TABLE in SJIS (the UTF-8 of Á, C3 81, ends in
// an SJIS lead byte that swallows the backslash of \', which then no longer escapes the quote)
// must not get the second string past the guard: it waits for the server's report, and the
// session ends, with an error that says why, when the report is not UTF-8.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import {
  type GuardedDatabase,
  noDropPolicy,
  startGuardedDatabase,
  tableExists,
} from './sidecar-postgres-harness.ts';
import { errorCode, RawClient } from './sidecar-postgres-raw.ts';

const POLICY = noDropPolicy('encoding');

const { msg, bind, execute } = RawClient;
/** UTF-8: one SELECT of an E'' string. SJIS: a SELECT, then DROP TABLE victim. */
const SMUGGLED = "SELECT E'Á\\'; DROP TABLE victim; --'";

let db: GuardedDatabase;

const victimExists = () => tableExists(db, 'victim');

before(async () => {
  db = await startGuardedDatabase({
    name: 'pg-encoding',
    pod: 'agent-pg-encoding',
    policy: POLICY,
    setup: async (c) => {
      await c.query('CREATE TABLE victim (id int)');
      await c.query(
        "CREATE FUNCTION to_sjis() RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM set_config('client_encoding', 'SJIS', false); RETURN 1; END $$",
      );
    },
  });
});
after(async () => {
  await db?.stop();
});

describe('PostgreSQL guard: client_encoding changed where the guard cannot see it', () => {
  // The premise, on the server directly: the same two strings, pipelined, drop the table.
  it('(directly, the server reads the second string in SJIS and drops the table)', async () => {
    const c = await RawClient.direct(db.database.url);
    try {
      await db.direct((d) => d.query('CREATE TABLE victim_direct (id int)'));
      c.send(msg('Q', 'SELECT to_sjis()'), msg('Q', SMUGGLED.replace('victim', 'victim_direct')));
      const got = await c.until('Z', 2);
      assert.ok(got.some(([t, b]) => t === 'C' && b.toString('latin1').startsWith('DROP TABLE')));
    } finally {
      c.close();
    }
  });

  // Fails if the guard forwarded the pipelined string before the server reported client_encoding
  // (the server would run the DROP the guard never saw), or did not end the session on SJIS.
  it('holds a non-ASCII string pipelined behind a Query until the server reports, then ends the session', async () => {
    const c = await RawClient.open(db.port, 'app');
    c.send(msg('Q', 'SELECT to_sjis()'), msg('Q', SMUGGLED));
    const got = await c.untilClosed();
    const fatal = got.find(([t, b]) => t === 'E' && b.toString('latin1').includes('SFATAL'));
    assert.ok(fatal, 'the session ends with a FATAL error');
    assert.equal(errorCode(fatal[1]), '0A000');
    assert.match(fatal[1].toString('utf8'), /client_encoding became SJIS.*Keep client_encoding UTF8/);
    assert.ok(await victimExists(), 'the table is still there');
  });

  // Fails if a non-ASCII Parse after an unsynced Execute were judged as UTF-8 and passed on.
  it('refuses a non-ASCII Parse behind an Execute with no Sync between them', async () => {
    const c = await RawClient.open(db.port, 'app');
    c.send(
      msg('P', '', 'SELECT to_sjis()', 0),
      bind(),
      execute(),
      msg('P', '', SMUGGLED, 0),
      bind(),
      execute(),
      msg('S'),
    );
    try {
      const got = await c.until('Z');
      const errors = got.filter(([t]) => t === 'E').map(([, b]) => b.toString('utf8'));
      assert.equal(errors.length, 1, errors.join(' | '));
      assert.match(errors[0] ?? '', /Send Sync first/, 'the refusal says what to do');
      assert.match(errors[0] ?? '', /chaperone-sql-encoding-unknown/);
      assert.ok(await victimExists(), 'the table is still there');
      // The refusal aborted the batch's implicit transaction, and set_config's change with it (the
      // server reports nothing): the session goes on in UTF-8.
      c.send(msg('Q', "SELECT 'é' AS v"));
      const rows = (await c.until('Z'))
        .filter(([t]) => t === 'D')
        .map(([, b]) => b.subarray(6).toString('utf8'));
      assert.deepEqual(rows, ['é']);
    } finally {
      c.close();
    }
  });

  // Fails if the guard held non-ASCII text forever, or reordered it: ordinary use is unaffected.
  it('passes non-ASCII text through when the encoding stays UTF-8, pipelined or not', async () => {
    const c = await RawClient.open(db.port, 'app');
    try {
      c.send(msg('Q', 'SELECT 1'), msg('Q', "SELECT 'é' AS v"), msg('Q', 'SELECT 2'));
      const got = await c.until('Z', 3);
      const rows = got.filter(([t]) => t === 'D').map(([, b]) => b.subarray(6).toString('utf8'));
      assert.deepEqual(rows, ['1', 'é', '2']);
    } finally {
      c.close();
    }
    const p = new pg.Client({ host: '127.0.0.1', port: db.port, database: 'app', user: 'agent' });
    await p.connect();
    try {
      assert.equal((await p.query({ text: "SELECT 'ü' || $1::text AS v", values: ['ß'] })).rows[0].v, 'üß');
    } finally {
      await p.end();
    }
  });

  // Fails if the guard let the session go on after the server reported another client_encoding.
  it('ends a psql session whose function changed client_encoding, with the reason', () => {
    const r = spawnSync(
      'psql',
      [
        '-X',
        '-w',
        '-h',
        '127.0.0.1',
        '-p',
        String(db.port),
        '-d',
        'app',
        '-c',
        'SELECT to_sjis()',
        '-c',
        'SELECT 1',
      ],
      {
        encoding: 'utf8',
        timeout: 20_000,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PGUSER: 'agent' },
      },
    );
    assert.notEqual(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /FATAL: {2}chaperone: client_encoding became SJIS/);
  });
});
