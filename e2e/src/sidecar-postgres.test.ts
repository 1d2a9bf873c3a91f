// The PostgreSQL guard end to end: a real `chaperone sidecar` process in front of the real
// PostgreSQL of the e2e global setup, driven by the clients agents use — psql (simple protocol,
// multi-statement strings), node `pg` (extended protocol with parameters), psycopg2 and the
// PostgreSQL JDBC driver (Debian's packages) — and by hand-built protocol messages where a
// client library would hide what is on the wire (a pipelined extended-protocol batch).
// Each test has its own database, declared on the sidecar as a database of its own.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import { readSpoolDir } from '@chaperone/sidecar';
import pg from 'pg';
import { createDatabase, createNamespace, type TestDatabase, type TestNamespace } from './environment.ts';
import { freePorts } from './ports.ts';
import { type SidecarUnderTest, startSidecar } from './sidecar-harness.ts';
import { errorCode, RawClient } from './sidecar-postgres-raw.ts';
import { ensurePackages } from './system-packages.ts';

const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: databases }
spec:
  defaultAction: allow
  rules:
    - name: no-drop
      match: { protocols: [postgres], sql: { statements: [drop, truncate, delete-without-where] } }
      action: deny
      message: Agents may not drop or empty tables.
`;
const DENIED = 'Agents may not drop or empty tables.';
/** What a client may send as a password: the sidecar never asks for one, and never passes one on. */
const AGENT_PASSWORD = 'agent-typed-password-5c1e';
const CANARY = 'canary-literal-7d2a';
const DATABASES = ['psql', 'multi', 'tx', 'pgnode', 'pipeline', 'psycopg', 'jdbc', 'cancel'] as const;
type Db = (typeof DATABASES)[number];

let ns: TestNamespace;
let sc: SidecarUnderTest;
let secretsDir: string;
const dbs = new Map<Db, TestDatabase>();
const ports = new Map<Db, number>();

/** The server itself, as the application role (for setting up and for checking what really happened). */
async function direct<T>(db: Db, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: (dbs.get(db) as TestDatabase).url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function orderCount(db: Db): Promise<number | 'no table'> {
  return direct(db, async (c) => {
    const exists = await c.query("SELECT to_regclass('public.orders') IS NOT NULL AS e");
    if (!exists.rows[0].e) return 'no table';
    return Number((await c.query('SELECT count(*) AS n FROM orders')).rows[0].n);
  });
}

/** psql as an agent runs it: host and port from the environment the injector sets, no password prompt. */
function psql(db: Db, args: string[], input?: string) {
  const r = spawnSync('psql', ['-X', '-w', '-v', 'VERBOSITY=verbose', ...args], {
    input,
    encoding: 'utf8',
    timeout: 30_000,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      PGHOST: '127.0.0.1',
      PGPORT: String(ports.get(db)),
      PGDATABASE: db,
      PGUSER: 'agent',
      PGPASSWORD: AGENT_PASSWORD,
      PGCONNECT_TIMEOUT: '10',
    },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function agentUrl(db: Db): string {
  return `postgresql://agent:${AGENT_PASSWORD}@127.0.0.1:${ports.get(db)}/${db}`;
}

function spoolEvents(): AuditEvent[] {
  return readSpoolDir(sc.spoolDir).filter((e) => e.chaperone.protocol === 'postgres');
}

before(async () => {
  ns = await createNamespace('pg-guard');
  secretsDir = mkdtempSync(join(tmpdir(), 'chaperone-db-secrets-'));
  const free = await freePorts(DATABASES.length);
  for (const [i, name] of DATABASES.entries()) {
    const db = await createDatabase(`pg_${name}`);
    dbs.set(name, db);
    ports.set(name, free[i] as number);
    // The Secret the injector mounts into the sidecar only: here, its `url` key.
    mkdirSync(join(secretsDir, name));
    writeFileSync(join(secretsDir, name, 'url'), `${db.url}?sslmode=prefer`);
    await direct(name, async (c) => {
      await c.query('CREATE TABLE orders (id int PRIMARY KEY, note text)');
      await c.query("INSERT INTO orders VALUES (1, 'a'), (2, 'b')");
    });
  }
  sc = await startSidecar({
    namespace: ns.name,
    policy: POLICY,
    extraArgs: [
      '--databases',
      DATABASES.map((d) => `${d}=${ports.get(d)}`).join(','),
      '--databases-dir',
      secretsDir,
    ],
  });
});

after(async () => {
  await sc?.stop();
  await Promise.all([...dbs.values()].map((d) => d.drop()));
  await ns?.delete();
  if (secretsDir) rmSync(secretsDir, { recursive: true, force: true });
});

describe('PostgreSQL through the sidecar: psql (simple protocol)', () => {
  it("runs an allowed query with no password, and denies DROP TABLE with the rule's message", async () => {
    const ok = psql('psql', ['-A', '-t', '-c', 'SELECT count(*) FROM orders']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), '2');
    const denied = psql('psql', ['-c', 'DROP TABLE orders']);
    assert.equal(denied.code, 1);
    // VERBOSITY=verbose prints the SQLSTATE: 42501 is insufficient_privilege.
    assert.match(denied.stderr, new RegExp(`ERROR:  42501: ${DENIED.replace('.', '\\.')}`));
    assert.match(denied.stderr, /chaperone rule "no-drop" denied statement 1 of 1 \(drop\)/);
    assert.equal(await orderCount('psql'), 2, 'the table is still there');
  });

  it('keeps the session usable after a deny', () => {
    const r = psql('psql', ['-A', '-t'], "DROP TABLE orders;\nSELECT 'still ' || 'usable';\n");
    assert.match(r.stderr, /42501/);
    assert.match(r.stdout, /still usable/);
  });

  // Fails if only the first statement of a Query were judged, or a denied string were forwarded in part.
  it('judges every statement of a string: SELECT 1; COMMIT; DROP SCHEMA public CASCADE runs none of them', async () => {
    // psql -c sends the whole string as one Query message.
    const r = psql('multi', ['-c', 'SELECT 1; COMMIT; DROP SCHEMA public CASCADE']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /denied statement 3 of 3 \(drop\); none of them ran/);
    assert.equal(await orderCount('multi'), 2, 'the schema and its table are still there');
    // A comment or a string literal does not hide a statement, nor does one make a statement of a string.
    const hidden = psql('multi', [
      '-A',
      '-t',
      '-c',
      "SELECT 'x; DROP TABLE orders; --' /* ; TRUNCATE orders */",
    ]);
    assert.equal(hidden.code, 0, hidden.stderr);
    const both = psql('multi', ['-c', 'SELECT 1 /* harmless */; TRUNCATE /* sneaky */ orders']);
    assert.equal(both.code, 1);
    assert.equal(await orderCount('multi'), 2);
  });

  // Fails if the sidecar answered a denial itself instead of making the server fail the statement
  // (session.ts #refuse): the transaction would stay open and SELECT 1 would succeed.
  it('leaves a transaction in the state the server would: aborted (25P02), and ROLLBACK works', async () => {
    const r = psql(
      'tx',
      ['-A', '-t'],
      [
        'BEGIN;',
        "INSERT INTO orders VALUES (3, 'c');",
        'DROP TABLE orders;',
        'SELECT 1;',
        '\\echo after-select :LAST_ERROR_SQLSTATE',
        'ROLLBACK;',
        'SELECT count(*) FROM orders;',
        '',
      ].join('\n'),
    );
    assert.match(r.stderr, /ERROR: {2}42501: Agents may not drop/);
    assert.match(
      r.stderr,
      /ERROR: {2}25P02: current transaction is aborted, commands ignored until end of transaction block/,
    );
    assert.match(r.stdout, /after-select 25P02/);
    // The INSERT before the denied statement was rolled back with the transaction.
    assert.match(r.stdout, /^2$/m);
    assert.equal(await orderCount('tx'), 2);
  });

  // Fails if the CancelRequest's key were not mapped to the upstream backend's (the sleep would run out).
  it('passes a cancel request on to the server backend', () => {
    const started = Date.now();
    const child = spawn('psql', ['-X', '-w', '-v', 'VERBOSITY=verbose', '-c', 'SELECT pg_sleep(30)'], {
      env: {
        PATH: process.env.PATH,
        PGHOST: '127.0.0.1',
        PGPORT: String(ports.get('cancel')),
        PGDATABASE: 'cancel',
        PGUSER: 'agent',
      },
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    // psql sends a CancelRequest on SIGINT, with the key the sidecar gave it.
    const timer = setTimeout(() => child.kill('SIGINT'), 1500);
    return new Promise<void>((resolve, reject) => {
      child.on('exit', () => {
        clearTimeout(timer);
        try {
          assert.match(stderr, /57014: canceling statement due to user request/);
          assert.ok(Date.now() - started < 20_000, 'the statement was cancelled, not waited out');
          resolve();
        } catch (err) {
          reject(err);
        }
      });
    });
  });
});

describe('PostgreSQL through the sidecar: node pg (extended protocol)', () => {
  it('runs parameterised queries, denies at Parse, and keeps transactions honest', async () => {
    const c = new pg.Client({ connectionString: agentUrl('pgnode') });
    await c.connect();
    try {
      const rows = await c.query('SELECT note FROM orders WHERE id = $1', [2]);
      assert.deepEqual(rows.rows, [{ note: 'b' }]);
      await c.query('INSERT INTO orders VALUES ($1, $2)', [10, CANARY]);
      // A named statement: Parse, Bind, Describe, Execute, Sync.
      await assert.rejects(
        c.query({ name: 'wipe', text: 'DELETE FROM orders', values: [] }),
        (err: pg.DatabaseError) => {
          assert.equal(err.code, '42501');
          assert.equal(err.message, DENIED);
          return true;
        },
      );
      assert.deepEqual((await c.query('SELECT count(*)::int AS n FROM orders WHERE id > $1', [0])).rows, [
        { n: 3 },
      ]);
      await c.query('BEGIN');
      await c.query('UPDATE orders SET note = $1 WHERE id = $2', ['changed', 1]);
      await assert.rejects(c.query({ name: 'wipe2', text: 'TRUNCATE orders', values: [] }), {
        code: '42501',
      });
      await assert.rejects(c.query('SELECT $1::int AS x', [1]), { code: '25P02' });
      await c.query('ROLLBACK');
      assert.deepEqual((await c.query('SELECT note FROM orders WHERE id = $1', [1])).rows, [{ note: 'a' }]);
    } finally {
      await c.end();
    }
    assert.equal(await orderCount('pgnode'), 3);
  });
});

describe('PostgreSQL through the sidecar: a pipelined extended-protocol batch', () => {
  // Fails if a denied Parse were answered without the server failing it (ReadyForQuery would say T,
  // not E) or if the statements after it in the batch ran (the UPDATE's answers would be followed by more).
  it('discards until Sync after a denied Parse, as the server does, and reports the true transaction status', async () => {
    const c = await RawClient.open(ports.get('pipeline') as number, 'pipeline');
    const { msg } = RawClient;
    try {
      c.send(msg('Q', 'BEGIN'));
      assert.deepEqual(
        (await c.until('Z')).map(([t]) => t),
        ['C', 'Z'],
      );
      const noParams = Buffer.from([0, 0, 0, 0, 0, 0]); // Bind: no formats, no parameters, no result formats
      c.send(
        msg('P', '', 'UPDATE orders SET note = note', 0),
        msg('B', '', '', noParams),
        msg('E', '', Buffer.from([0, 0, 0, 0])),
        msg('P', 'wipe', 'TRUNCATE orders', 0),
        msg('B', '', 'wipe', noParams),
        msg('E', '', Buffer.from([0, 0, 0, 0])),
        msg('S'),
      );
      const batch = await c.until('Z');
      // ParseComplete, BindComplete, CommandComplete for the UPDATE; then the denial for the
      // TRUNCATE's Parse, nothing for its Bind and Execute (discarded), ReadyForQuery at Sync:
      // in a failed transaction block ('E'), as the server would report it.
      assert.deepEqual(
        batch.map(([t]) => t),
        ['1', '2', 'C', 'E', 'Z'],
      );
      assert.equal(errorCode((batch[3] as [string, Buffer])[1]), '42501');
      assert.match((batch[3] as [string, Buffer])[1].toString(), new RegExp(DENIED.replace('.', '\\.')));
      assert.equal((batch[4] as [string, Buffer])[1].toString(), 'E');
      c.send(msg('Q', 'SELECT 1'));
      const after = await c.until('Z');
      assert.equal(errorCode((after[0] as [string, Buffer])[1]), '25P02');
      c.send(msg('Q', 'ROLLBACK'));
      assert.deepEqual(
        (await c.until('Z')).map(([t, b]) => (t === 'Z' ? `Z${b.toString()}` : t)),
        ['C', 'ZI'],
      );
    } finally {
      c.close();
    }
    assert.equal(await orderCount('pipeline'), 2);
  });
});

describe('PostgreSQL through the sidecar: psycopg2 and JDBC', () => {
  before(() =>
    ensurePackages(
      ['python3-psycopg2', 'libpostgresql-jdbc-java'],
      'the psycopg2 and JDBC clients of the PostgreSQL end-to-end test',
      (l) => process.stderr.write(`${l}\n`),
    ),
  );

  it('psycopg2: an allowed query, a denied DROP TABLE, the aborted transaction, ROLLBACK', async () => {
    const script = `
import json, sys, psycopg2
conn = psycopg2.connect(sys.argv[1])
cur = conn.cursor()
out = {}
cur.execute("SELECT note FROM orders WHERE id = %s", (1,))
out["allowed"] = cur.fetchone()[0]
try:
    cur.execute("DROP TABLE orders")
except psycopg2.Error as e:
    out["denied"] = [e.pgcode, e.diag.message_primary]
try:
    cur.execute("SELECT 1")
except psycopg2.Error as e:
    out["next"] = e.pgcode
conn.rollback()
cur.execute("SELECT count(*) FROM orders")
out["after_rollback"] = cur.fetchone()[0]
print(json.dumps(out))
`;
    // Debian's python3, where Debian's psycopg2 lives.
    const r = spawnSync('/usr/bin/python3', ['-c', script, agentUrl('psycopg')], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      allowed: 'a',
      denied: ['42501', DENIED],
      next: '25P02',
      after_rollback: 2,
    });
    assert.equal(await orderCount('psycopg'), 2);
  });

  it('JDBC: an allowed prepared query, a denied DROP TABLE, the aborted transaction, rollback', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chaperone-jdbc-'));
    try {
      writeFileSync(
        join(dir, 'Agent.java'),
        `import java.sql.*;
public class Agent {
  public static void main(String[] a) throws Exception {
    try (Connection c = DriverManager.getConnection(a[0], "agent", "${AGENT_PASSWORD}")) {
      try (PreparedStatement p = c.prepareStatement("SELECT note FROM orders WHERE id = ?")) {
        p.setInt(1, 2);
        try (ResultSet rs = p.executeQuery()) { rs.next(); System.out.println("allowed " + rs.getString(1)); }
      }
      c.setAutoCommit(false);
      try (Statement s = c.createStatement()) { s.execute("DROP TABLE orders"); }
      catch (SQLException e) { System.out.println("denied " + e.getSQLState() + " " + e.getMessage().split("\\n")[0]); }
      try (Statement s = c.createStatement()) { s.execute("SELECT 1"); }
      catch (SQLException e) { System.out.println("next " + e.getSQLState()); }
      c.rollback();
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM orders")) {
        rs.next(); System.out.println("after_rollback " + rs.getInt(1));
      }
    }
  }
}
`,
      );
      const r = spawnSync(
        'java',
        [
          '-cp',
          '/usr/share/java/postgresql.jar',
          join(dir, 'Agent.java'),
          `jdbc:postgresql://127.0.0.1:${ports.get('jdbc')}/jdbc`,
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n'), [
        'allowed b',
        `denied 42501 ERROR: ${DENIED}`,
        'next 25P02',
        'after_rollback 2',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(await orderCount('jdbc'), 2);
  });
});

describe('PostgreSQL through the sidecar: TLS towards the agent', () => {
  it("offers TLS with the pod's local CA when configured, and a client that insists verifies it", async () => {
    const [port] = (await freePorts(1)) as [number];
    const db = await createDatabase('pg_tls');
    const dir = mkdtempSync(join(tmpdir(), 'chaperone-db-secrets-'));
    mkdirSync(join(dir, 'tls'));
    writeFileSync(join(dir, 'tls', 'url'), db.url);
    const tlsSidecar = await startSidecar({
      namespace: ns.name,
      pod: 'agent-tls',
      policy: POLICY,
      extraArgs: ['--databases', `tls=${port}`, '--databases-dir', dir, '--database-tls', 'offer'],
    });
    try {
      const ca = join(tlsSidecar.agentRoot, 'var/run/secrets/kubernetes.io/serviceaccount/ca.crt');
      const r = spawnSync('psql', ['-X', '-w', '-c', '\\conninfo'], {
        encoding: 'utf8',
        timeout: 30_000,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          PGHOST: '127.0.0.1',
          PGPORT: String(port),
          PGDATABASE: 'tls',
          PGUSER: 'agent',
          PGSSLMODE: 'verify-full',
          PGSSLROOTCERT: ca,
        },
      });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /SSL connection \(protocol: TLSv1\.[23]/);
      // Without the setting, an SSLRequest is answered N: the default (direct) mode refuses a client that insists.
      const plain = spawnSync('psql', ['-X', '-w', '-c', 'SELECT 1'], {
        encoding: 'utf8',
        timeout: 30_000,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          PGHOST: '127.0.0.1',
          PGPORT: String(ports.get('psql')),
          PGDATABASE: 'psql',
          PGUSER: 'agent',
          PGSSLMODE: 'require',
        },
      });
      assert.equal(plain.status, 2);
      assert.match(plain.stderr, /server does not support SSL/);
    } finally {
      await tlsSidecar.stop();
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('PostgreSQL through the sidecar: the audit trail', () => {
  it('records one event per statement, with decision, rule, kinds, rows and a normalised text', async () => {
    const r = psql('psql', ['-c', `INSERT INTO orders VALUES (20, '${CANARY}'), (21, 'x')`]);
    assert.equal(r.code, 0, r.stderr);
    const events = spoolEvents();
    const insert = events.find(
      (e) => e.chaperone.sql?.database === 'psql' && e.chaperone.sql.text?.startsWith('INSERT'),
    );
    assert.ok(insert, 'the INSERT has an event');
    assert.equal(insert.chaperone.sql?.text, 'INSERT INTO orders VALUES ($1, $2), ($3, $4)');
    assert.equal(insert.chaperone.sql?.rows, 2);
    assert.equal(insert.chaperone.decision.action, 'allow');
    assert.match(insert.chaperone.sql?.fingerprint ?? '', /^[0-9a-f]{16}$/);
    const drop = events.find(
      (e) => e.chaperone.sql?.text === 'DROP TABLE orders' && e.chaperone.sql.database === 'psql',
    );
    assert.ok(drop, 'the denied DROP has an event');
    assert.deepEqual([drop.chaperone.decision.action, drop.chaperone.decision.rule], ['deny', 'no-drop']);
    assert.deepEqual(drop.chaperone.sql?.statements, [
      { kind: 'DropStmt', kinds: ['ddl', 'drop', 'write'], tables: ['orders'] },
    ]);
    assert.equal(drop.responseStatus?.code, 403);
    // The multi-statement string: three events, all denied, one session.
    const multi = events.filter(
      (e) => e.chaperone.sql?.database === 'multi' && e.chaperone.decision.rule === 'no-drop',
    );
    const session = multi.find((e) => e.chaperone.sql?.text === 'DROP SCHEMA public CASCADE')?.chaperone
      .sessionId;
    assert.ok(session);
    assert.deepEqual(
      multi.filter((e) => e.chaperone.sessionId === session).map((e) => e.chaperone.sql?.text),
      ['SELECT $1', 'COMMIT', 'DROP SCHEMA public CASCADE'],
    );
  });

  // Fails if an event carried the statement's raw text (the canary) or the sidecar logged credentials.
  it('keeps literals, the database password and what the agent typed out of events and logs', () => {
    const spool = readdirSync(sc.spoolDir)
      .map((f) => readFileSync(join(sc.spoolDir, f), 'latin1'))
      .join('\n');
    const log = readFileSync(sc.logFile, 'utf8');
    const realPassword = decodeURIComponent(new URL((dbs.get('psql') as TestDatabase).url).password);
    for (const [what, text] of [
      ['spool', spool],
      ['sidecar log', log],
    ] as const) {
      assert.ok(!text.includes(CANARY), `the canary literal is not in the ${what}`);
      assert.ok(!text.includes(realPassword), `the database password is not in the ${what}`);
      assert.ok(!text.includes(AGENT_PASSWORD), `the agent's password is not in the ${what}`);
    }
    assert.ok(spoolEvents().length >= 5, 'the spool holds the events searched');
  });
});
