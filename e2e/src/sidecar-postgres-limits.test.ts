// The PostgreSQL guard's limits, end to end with real clients (node `pg`, psql) and a raw socket,
// through a real `chaperone sidecar` in front of the real PostgreSQL of the e2e global setup, each
// limit set low so the test is quick: the longest query string it parses (--max-sql-parse-bytes:
// the parser runs on the event loop every connection shares), the time a client has to finish its
// start-up (--database-startup-timeout) and the connections it serves at once
// (--max-database-connections). Each is answered in the protocol the client speaks, with what
// happened, which limit, and what to do.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import { readSpoolDir } from '@chaperone/sidecar';
import pg from 'pg';
import { waitFor } from './process.ts';
import { type GuardedDatabase, startGuardedDatabase } from './sidecar-postgres-harness.ts';

const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: limits }
spec: { defaultAction: allow, rules: [] }
`;
const PARSE_LIMIT = 4096;
const CONNECTIONS = 2;

let db: GuardedDatabase;

function client(): pg.Client {
  return new pg.Client({ host: '127.0.0.1', port: db.port, database: 'app', user: 'agent' });
}

async function code(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { code?: string; message: string };
    return { ...(e.code !== undefined ? { code: e.code } : {}), message: e.message };
  }
  assert.fail('expected an error');
}

/** Waits until the sidecar has closed `n` database sessions in all (its debug log says each). */
async function sessionsClosed(n: number): Promise<void> {
  // Counted when the socket has closed, which is when the cap counts it out (the session ends before).
  await waitFor(
    async () =>
      (readFileSync(db.sidecar.logFile, 'utf8').match(/"msg":"database connection closed"/g)?.length ?? 0) >=
      n,
    { what: `the sidecar to close ${n} database sessions`, timeoutMs: 10_000, intervalMs: 50 },
  );
}

/** Everything the sidecar sends on a raw connection until it closes it. */
function rawUntilClosed(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const t = setTimeout(
      () => reject(new Error('the sidecar did not close the connection within 20 s')),
      20_000,
    );
    socket.on('data', (d: Buffer) => parts.push(d));
    socket.on('error', () => {});
    socket.once('close', () => {
      clearTimeout(t);
      resolve(Buffer.concat(parts));
    });
  });
}

before(async () => {
  db = await startGuardedDatabase({
    name: 'pg-limits',
    pod: 'agent-pg-limits',
    policy: POLICY,
    extraArgs: [
      '--max-sql-parse-bytes',
      String(PARSE_LIMIT),
      '--database-startup-timeout',
      '1s',
      '--max-database-connections',
      String(CONNECTIONS),
    ],
  });
});
after(async () => {
  await db?.stop();
});

describe('PostgreSQL guard: connections served at once', () => {
  // Fails if the cap closed connections silently (Node's server.maxConnections: the client sees
  // "Connection terminated unexpectedly" / psql "server closed the connection unexpectedly") or
  // were not enforced at all (the third connection would succeed).
  it('refuses a connection past the cap with 53300 in the protocol, and serves again when one closes', async () => {
    const open = [client(), client()];
    for (const c of open) await c.connect();
    try {
      const third = client();
      const e = await code(third.connect());
      assert.equal(e.code, '53300');
      assert.match(e.message, /at most 2 at once \(--max-database-connections\)/);
      // psql opens with SSLRequest (sslmode=prefer): it gets N, then the same refusal.
      const r = spawnSync(
        'psql',
        ['-X', '-w', '-h', '127.0.0.1', '-p', String(db.port), '-d', 'app', '-c', 'SELECT 1'],
        {
          encoding: 'utf8',
          timeout: 20_000,
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PGUSER: 'agent', PGSSLMODE: 'prefer' },
        },
      );
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /FATAL: {2}chaperone: too many connections to database "app"/);
    } finally {
      await (open.pop() as pg.Client).end();
    }
    // The refused pg and psql connections and the one just ended: the cap counts sessions the sidecar still has.
    await sessionsClosed(3);
    const again = client();
    await again.connect();
    try {
      assert.equal((await again.query('SELECT 2 AS two')).rows[0].two, 2);
    } finally {
      await again.end();
      for (const c of open) await c.end();
    }
    await sessionsClosed(5);
  });
});

describe('PostgreSQL guard: query strings too long to parse', () => {
  const long = `SELECT '${'long-literal-'.repeat(400)}' AS v`; // over 4 KiB
  const short = `SELECT '${'x'.repeat(PARSE_LIMIT / 2)}' AS v`;

  // Fails if the guard parsed any length (no 54000: the query would run), or refused it without
  // saying which limit, or ended the session.
  it('refuses a long simple Query unread, names the limit, and the session goes on', async () => {
    const c = client();
    await c.connect();
    try {
      assert.equal((await c.query(short)).rows[0].v.length, PARSE_LIMIT / 2, 'under the limit: runs');
      const e = await code(c.query(long));
      assert.equal(e.code, '54000');
      assert.match(e.message, /at most 4096 \(--max-sql-parse-bytes\).*parameters/);
      assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'the session is usable');
      // Inside a transaction the refusal aborts it, as the server's own error would.
      await c.query('BEGIN');
      await code(c.query(long));
      assert.equal((await code(c.query('SELECT 1'))).code, '25P02');
      await c.query('ROLLBACK');
    } finally {
      await c.end();
    }
  });

  // Fails if a long Parse were parsed or passed on (the server would run it and return the row).
  it('refuses a long Parse (extended protocol) the same way', async () => {
    const c = client();
    await c.connect();
    try {
      const e = await code(c.query({ text: `${long} WHERE $1::int = 1`, values: [1] }));
      assert.equal(e.code, '54000');
      assert.equal((await c.query({ text: 'SELECT $1::int AS n', values: [7] })).rows[0].n, 7);
    } finally {
      await c.end();
    }
    const refused = readSpoolDir(db.sidecar.spoolDir).filter(
      (ev: AuditEvent) => ev.chaperone.decision.rule === 'chaperone-sql-too-long',
    );
    assert.ok(refused.length >= 3, 'each refusal has its event');
    for (const ev of refused) {
      assert.equal(ev.chaperone.decision.action, 'deny');
      assert.doesNotMatch(JSON.stringify(ev), /long-literal/, 'the unread text is not recorded');
    }
  });
});

describe('PostgreSQL guard: start-up timeout', () => {
  // Fails if a silent client were kept forever, or dropped without an error it could read.
  it('ends a client that sends nothing with an ErrorResponse naming the limit', async () => {
    const socket = connect({ host: '127.0.0.1', port: db.port });
    const got = await rawUntilClosed(socket);
    assert.equal(String.fromCharCode(got[0] ?? 0), 'E');
    const text = got.toString('latin1');
    assert.match(text, /SFATAL\0/);
    assert.match(text, /C08P01\0/);
    assert.match(text, /start-up did not finish within 1 s \(--database-startup-timeout\)/);
  });

  it('ends a client that stops after SSLRequest the same way, after its N', async () => {
    const socket = connect({ host: '127.0.0.1', port: db.port });
    const closed = rawUntilClosed(socket);
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8, 0);
    ssl.writeInt32BE(80877103, 4);
    socket.write(ssl);
    const got = await closed;
    assert.equal(String.fromCharCode(got[0] ?? 0), 'N');
    assert.match(got.subarray(1).toString('latin1'), /^E[\s\S]*start-up did not finish/);
  });
});
