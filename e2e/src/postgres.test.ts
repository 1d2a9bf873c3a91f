// Real PostgreSQL (Debian's server, started by the e2e global setup), real
// psql and the pg package, SCRAM-SHA-256 authentication.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createDatabase, postgresInfo, type TestDatabase } from './environment.ts';

describe('PostgreSQL for end-to-end tests', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createDatabase('smoke');
  });
  after(async () => {
    await db?.drop();
  });

  it('psql connects with SCRAM and runs queries', () => {
    const p = postgresInfo();
    const run = (password: string, sql: string) =>
      spawnSync(
        'psql',
        [
          '-X',
          '-A',
          '-t',
          '-v',
          'ON_ERROR_STOP=1',
          '-h',
          p.host,
          '-p',
          String(p.port),
          '-U',
          p.user,
          '-d',
          db.name,
          '-c',
          sql,
        ],
        {
          encoding: 'utf8',
          env: { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: '5' },
        },
      );
    const ok = run(
      p.password,
      'CREATE TABLE t (id int primary key, v text); INSERT INTO t VALUES (1, $$one$$), (2, $$two$$); SELECT count(*) FROM t;',
    );
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^2$/m);
    const bad = run('wrong-password', 'SELECT 1');
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /password authentication failed/);
  });

  it('the pg package connects with SCRAM-SHA-256 and runs parameterised queries', async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const enc = await client.query<{ password_encryption: string }>('SHOW password_encryption');
      assert.equal(enc.rows[0]?.password_encryption, 'scram-sha-256');
      const r = await client.query<{ n: number }>('SELECT $1::int + 1 AS n', [41]);
      assert.equal(r.rows[0]?.n, 42);
    } finally {
      await client.end();
    }
    const wrong = new pg.Client({ connectionString: db.url.replace(/:[^:@]+@/, ':nope@') });
    await assert.rejects(wrong.connect(), /password authentication failed/);
  });

  it('every connection, TCP or socket, must authenticate with SCRAM-SHA-256', async () => {
    const p = postgresInfo();
    const admin = new pg.Client({
      host: p.host,
      port: p.port,
      user: p.superuser.user,
      password: p.superuser.password,
      database: 'postgres',
    });
    await admin.connect();
    try {
      const auth = await admin.query<{ auth_method: string }>(
        'SELECT DISTINCT auth_method FROM pg_hba_file_rules',
      );
      assert.deepEqual(
        auth.rows.map((x) => x.auth_method),
        ['scram-sha-256'],
      );
      const stored = await admin.query<{ scram: boolean }>(
        "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' AS scram FROM pg_authid WHERE rolname = $1",
        [p.user],
      );
      assert.equal(stored.rows[0]?.scram, true);
    } finally {
      await admin.end();
    }
  });

  it('each test gets its own database', async () => {
    const other = await createDatabase('smoke');
    try {
      assert.notEqual(other.name, db.name);
      const client = new pg.Client({ connectionString: other.url });
      await client.connect();
      const r = await client.query("SELECT to_regclass('public.t') AS t");
      await client.end();
      assert.equal(r.rows[0].t, null);
    } finally {
      await other.drop();
    }
  });
});
