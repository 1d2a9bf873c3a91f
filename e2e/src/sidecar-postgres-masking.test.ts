// Masking through the PostgreSQL guard, end to end: a real `chaperone sidecar` in front of the
// real PostgreSQL of the e2e global setup, with a policy that masks users.password and users.pin.
// Clients as agents run them — psql (simple protocol, COPY in text, csv and binary), node `pg` in
// text and in binary result format, and a hand-built extended-protocol batch that asks for binary
// results without describing its portal — see masked values where the server attributes a column
// to users.password or users.pin, and are denied every statement that would let such a value out
// any other way. A canary value in the masked columns appears nowhere: not in what clients
// print, not in the sidecar's log, not in its audit spool. (No collector runs in this test.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import { readSpoolDir } from '@chaperone/sidecar';
import pg from 'pg';
import { type GuardedDatabase, startGuardedDatabase, tableExists } from './sidecar-postgres-harness.ts';

const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: masking }
spec:
  defaultAction: allow
  rules:
    - name: no-drop
      match: { protocols: [postgres], sql: { statements: [drop] } }
      action: deny
    - name: mask-credentials
      match: { sql: { tables: [users], columns: [password, pin] } }
      action: mask
      message: Credentials are masked.
    - name: mask-api-keys
      match: { sql: { tables: [public.accounts], columns: [api_key] } }
      action: mask
`;
const MASKED = '**masked**';
const CANARY = 'canary-pw-4e1f9c';
const CANARY_PIN = 918273645;
const CANARY_HEX = Buffer.from(CANARY).toString('hex');
/** What the accounts table generates from the canary key (md5), which is as secret. */
const CANARY_KEY_MD5 = createHash('md5').update(`${CANARY}-key`).digest('hex');
const UNMASKABLE = 'chaperone-sql-mask-unmaskable';

let guarded: GuardedDatabase;
let port: number;
/** Everything any client printed or received, searched for the canary at the end. */
const seen: string[] = [];

function psql(args: string[], input?: string, encoding: BufferEncoding = 'utf8') {
  const r = spawnSync('psql', ['-X', '-w', '-v', 'VERBOSITY=verbose', ...args], {
    ...(input === undefined ? {} : { input: Buffer.from(input) }),
    encoding: 'buffer',
    timeout: 30_000,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      PGHOST: '127.0.0.1',
      PGPORT: String(port),
      PGDATABASE: 'app',
      PGUSER: 'agent',
      PGCONNECT_TIMEOUT: '10',
    },
  });
  const out = { code: r.status, stdout: r.stdout.toString(encoding), stderr: r.stderr.toString('utf8') };
  seen.push(r.stdout.toString('latin1'), out.stderr);
  return out;
}

const agentUrl = () => `postgresql://agent@127.0.0.1:${port}/app`;

function spoolEvents(): AuditEvent[] {
  return readSpoolDir(guarded.sidecar.spoolDir).filter((e) => e.chaperone.protocol === 'postgres');
}

before(async () => {
  // The schema as the application made it, outside the guard: a masked table, a view over it, a
  // function that reads it, a table of another name in another schema.
  guarded = await startGuardedDatabase({
    name: 'pg-mask',
    pod: 'agent-mask',
    policy: POLICY,
    setup: async (c) => {
      await c.query(`
      CREATE TABLE users (id int PRIMARY KEY, name text, password text, pin int CHECK (pin IS NULL OR pin >= 0), joined date);
      INSERT INTO users VALUES (1, 'ada', '${CANARY}', ${CANARY_PIN}, '2024-01-02'),
                               (2, 'bob', NULL, NULL, '2024-03-04');
      CREATE TABLE orders (id int PRIMARY KEY, user_id int, note text);
      INSERT INTO orders VALUES (10, 1, 'first');
      CREATE VIEW user_names AS SELECT id, name, password FROM users;
      CREATE FUNCTION first_password() RETURNS text LANGUAGE sql AS $$ SELECT password FROM users LIMIT 1 $$;
      CREATE SCHEMA staging;
      CREATE TABLE staging.notes (id int, password text);
      INSERT INTO staging.notes VALUES (1, 'staged-secret-6b2d');
      CREATE TABLE accounts (id int, api_key text, key_md5 text GENERATED ALWAYS AS (md5(api_key)) STORED);
      INSERT INTO accounts (id, api_key) VALUES (1, '${CANARY}-key');
    `);
    },
  });
  port = guarded.port;
});

after(() => guarded?.stop());

describe('PostgreSQL masking: psql', () => {
  // Fails if RowDescription's attribution were not used (SELECT * has no column names to go by).
  it('masks the columns the server attributes to users.password and users.pin, whatever they are called', () => {
    const r = psql(['-A', '-F', '|', '-c', 'SELECT * FROM users ORDER BY id']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [
      'id|name|password|pin|joined',
      `1|ada|${MASKED}||2024-01-02`,
      `2|bob|${MASKED}||2024-03-04`,
      '(2 rows)',
    ]);
    const renamed = psql([
      '-A',
      '-t',
      '-c',
      'SELECT u.password AS hint, u.pin AS code, u.name FROM users u WHERE u.id = 1',
    ]);
    assert.equal(renamed.stdout.trim(), `${MASKED}||ada`);
  });

  it('masks RETURNING of INSERT, UPDATE and DELETE', () => {
    const r = psql(
      ['-A', '-t', '-q'],
      [
        `INSERT INTO users VALUES (3, 'cy', '${CANARY}-3', 1, now()) RETURNING id, password;`,
        "UPDATE users SET name = 'ada2' WHERE id = 1 RETURNING password, pin, name;",
        'DELETE FROM users WHERE id = 3 RETURNING *;',
      ].join('\n'),
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], `3|${MASKED}`);
    assert.equal(lines[1], `${MASKED}||ada2`);
    assert.match(lines[2] ?? '', /^3\|cy\|\*\*masked\*\*\|\|/);
  });

  it('masks COPY users TO STDOUT in text, csv (with a header) and binary', () => {
    const text = psql(['-c', 'COPY users (id, password, pin, name) TO STDOUT']);
    assert.equal(text.code, 0, text.stderr);
    assert.deepEqual(text.stdout.trim().split('\n').sort(), [
      `1\t${MASKED}\t\\N\tada2`,
      `2\t${MASKED}\t\\N\tbob`,
    ]);
    const csv = psql(['-c', "COPY users TO STDOUT WITH (FORMAT csv, HEADER true, DELIMITER ';')"]);
    assert.equal(csv.code, 0, csv.stderr);
    const rows = csv.stdout.trim().split('\n');
    assert.equal(rows[0], 'id;name;password;pin;joined');
    assert.ok(rows.slice(1).every((l) => l.split(';')[2] === `"${MASKED}"` && l.split(';')[3] === ''));
    const binary = psql(['-c', 'COPY users TO STDOUT (FORMAT binary)'], undefined, 'latin1');
    assert.equal(binary.code, 0, binary.stderr);
    assert.ok(binary.stdout.startsWith('PGCOPY\n\xff\r\n\0'));
    assert.equal(binary.stdout.split(MASKED).length - 1, 2);
  });

  it('masks what EXECUTE of a prepared statement and FETCH from a cursor return', () => {
    const r = psql(
      ['-A', '-t', '-q'],
      [
        'PREPARE p AS SELECT password, name FROM users WHERE id = $1;',
        'EXECUTE p(1);',
        'BEGIN;',
        'DECLARE c CURSOR FOR SELECT pin, password FROM users WHERE id = 1;',
        'FETCH ALL FROM c;',
        'COMMIT;',
        '',
      ].join('\n'),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [`${MASKED}|ada2`, `|${MASKED}`]);
  });

  // Fails if an error's detail were passed on: "Failing row contains (1, ada2, <password>, -5, …)".
  it("keeps masked values out of errors: a constraint violation's failing row is withheld", () => {
    const r = psql(['-c', 'UPDATE users SET pin = -5 WHERE id = 1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERROR: {2}23514: new row for relation "users" violates check constraint/);
    assert.doesNotMatch(r.stderr, /DETAIL|Failing row/);
  });

  // Fails if a generated column were judged by its own name: md5(api_key) is the key's.
  it('masks a column the table generates from a masked one, and denies using it', () => {
    const r = psql(['-A', '-t', '-c', 'SELECT * FROM accounts']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `1|${MASKED}|${MASKED}`);
    const used = psql(['-c', "SELECT id FROM accounts WHERE key_md5 = md5('guess')"]);
    assert.equal(used.code, 1);
    assert.match(used.stderr, /column "key_md5" of masked table accounts/);
  });

  const derived: [string, string][] = [
    ['an expression', 'SELECT md5(password) FROM users'],
    ['a cast', 'SELECT pin::text FROM users'],
    ['a condition', "SELECT id FROM users WHERE password LIKE 'canary%'"],
    ['a sort', 'SELECT id FROM users ORDER BY password'],
    ['an aggregate', "SELECT string_agg(password, ',') FROM users"],
    ['a whole row', 'SELECT row_to_json(u) FROM users u'],
    ['a row value', 'SELECT u FROM users u'],
    ['a subquery', 'SELECT * FROM (SELECT password FROM users) s'],
    ['a CTE', 'WITH c AS (SELECT password FROM users) SELECT * FROM c'],
    ['a set operation', 'SELECT password FROM users UNION ALL SELECT note FROM orders'],
    ['a view over the table', 'SELECT * FROM user_names'],
    ['a function that reads the table', 'SELECT first_password()'],
    ['COPY of a query', 'COPY (SELECT password FROM users) TO STDOUT'],
    ['a copy into another table', 'CREATE TABLE stolen AS SELECT password FROM users'],

    ['value statistics', "SELECT most_common_vals FROM pg_stats WHERE tablename = 'users'"],
    ['a rename', 'ALTER TABLE users RENAME COLUMN password TO pw'],
  ];
  for (const [what, sql] of derived) {
    // Fails if the derived use were let through (the canary check below would also catch its value).
    it(`denies a masked column used in ${what}: ${sql}`, () => {
      const r = psql(['-c', sql]);
      assert.equal(r.code, 1, `${sql} ran: ${r.stdout}`);
      assert.match(r.stderr, /ERROR: {2}42501: /);
      assert.match(r.stderr, new RegExp(`chaperone rule "${UNMASKABLE}" denied statement 1 of 1`));
    });
  }

  // Fails if what EXECUTE runs were read as returned to the client when CREATE TABLE … AS stores it
  // (session.ts #maskFacts merging it as it is): the plain password column would be copied into a
  // table no mask names, and read from there unmasked.
  for (const store of [
    'CREATE TABLE stolen_exec AS EXECUTE pw',
    'EXPLAIN ANALYZE CREATE TABLE stolen_exec AS EXECUTE pw',
  ]) {
    it(`denies storing what a prepared statement returns: ${store}`, async () => {
      const r = psql([
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        'PREPARE pw AS SELECT password FROM users',
        '-c',
        store,
        '-c',
        'SELECT * FROM stolen_exec',
      ]);
      assert.notEqual(r.code, 0, 'the table was created and read');
      assert.match(r.stderr, /ERROR: {2}42501: /);
      assert.match(r.stderr, new RegExp(`chaperone rule "${UNMASKABLE}" denied statement 1 of 1`));
      assert.equal(await tableExists(guarded, 'stolen_exec'), false);
    });
  }

  // query_to_xml runs SQL given as text: denied as dynamic SQL already, and by masking in any case.
  it('denies SQL given as text to a function', () => {
    const r = psql(['-c', "SELECT query_to_xml('select password from users', true, true, '')"]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /ERROR: {2}42501: /);
  });

  it('keeps the session and transaction state honest after such a denial', () => {
    const r = psql(
      ['-A', '-t'],
      ['BEGIN;', 'SELECT md5(password) FROM users;', 'SELECT 1;', 'ROLLBACK;', "SELECT 'usable';", ''].join(
        '\n',
      ),
    );
    assert.match(r.stderr, /42501/);
    assert.match(r.stderr, /25P02/);
    assert.match(r.stdout, /usable/);
  });

  // Fails if the catalog's cached answers about staging.notes survived the rename made through the
  // guard: FETCH names no table, so only the table OID in its RowDescription says what it reads (a
  // held cursor goes on reading the renamed table, where a prepared statement would be re-planned).
  it('sees a table renamed through the guard at once: a table renamed to users is masked', () => {
    const r = psql(
      ['-A', '-t', '-q'],
      [
        'BEGIN;',
        'DECLARE notes SCROLL CURSOR WITH HOLD FOR SELECT password FROM staging.notes;',
        'FETCH FIRST FROM notes;',
        'COMMIT;',
        'ALTER TABLE staging.notes RENAME TO users;',
        'FETCH FIRST FROM notes;',
        '',
      ].join('\n'),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['staged-secret-6b2d', MASKED], r.stderr);
  });
});

describe('PostgreSQL masking: node pg', () => {
  it('masks in text result format (extended protocol with parameters)', async () => {
    const c = new pg.Client({ connectionString: agentUrl() });
    await c.connect();
    try {
      const r = await c.query('SELECT id, password, pin, joined FROM users WHERE id = $1', [2]);
      seen.push(JSON.stringify(r.rows));
      assert.deepEqual(r.rows, [{ id: 2, password: MASKED, pin: null, joined: r.rows[0].joined }]);
      // A named statement executed twice: the second Execute has no Describe from the client.
      for (let i = 0; i < 2; i++) {
        const again = await c.query({
          name: 'pw',
          text: 'SELECT password FROM users WHERE id = $1',
          values: [1],
        });
        seen.push(JSON.stringify(again.rows));
        assert.deepEqual(again.rows, [{ password: MASKED }]);
      }
    } finally {
      await c.end();
    }
  });

  // Fails if a masked int4 were replaced by anything but NULL in binary (pg would misread its bytes),
  // or a masked text by anything but the marker's bytes.
  it('masks in binary result format, with values every binary decoder accepts', async () => {
    const c = new pg.Client({ connectionString: agentUrl(), binary: true } as pg.ClientConfig);
    await c.connect();
    try {
      const r = await c.query({
        text: 'SELECT id, password, pin FROM users WHERE id = $1',
        values: [1],
        binary: true,
      } as pg.QueryConfig);
      seen.push(JSON.stringify(r.rows));
      assert.deepEqual(
        r.fields.map((f) => f.format),
        ['binary', 'binary', 'binary'],
      );
      assert.deepEqual(r.rows, [{ id: 1, password: MASKED, pin: null }]);
    } finally {
      await c.end();
    }
  });
});

/** What a pipelining driver sends, built by hand: Parse, Bind asking for binary results, Execute, Sync — no Describe. */
function message(type: string, ...parts: (string | Buffer)[]): Buffer {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(`${p}\0`) : p)));
  const head = Buffer.alloc(5);
  head.write(type, 0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

async function rawSession(send: Buffer[]): Promise<[string, Buffer][]> {
  const socket: Socket = connect({ host: '127.0.0.1', port });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let buf = Buffer.alloc(0);
  const out: [string, Buffer][] = [];
  let readies = 0;
  const params = Buffer.from('user\0agent\0database\0app\0\0');
  const start = Buffer.alloc(8);
  start.writeInt32BE(8 + params.length, 0);
  start.writeInt32BE(196608, 4);
  socket.write(Buffer.concat([start, params]));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out; got ${out.map((m) => m[0]).join(' ')}`)),
      10_000,
    );
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 5 && buf.length >= buf.readInt32BE(1) + 1) {
        const len = buf.readInt32BE(1);
        const m: [string, Buffer] = [String.fromCharCode(buf[0] as number), buf.subarray(5, len + 1)];
        buf = buf.subarray(len + 1);
        out.push(m);
        if (m[0] !== 'Z') continue;
        readies++;
        if (readies === 1) socket.write(Buffer.concat(send));
        else {
          clearTimeout(timer);
          socket.end(message('X'));
          resolve(out);
        }
      }
    });
  });
}

describe('PostgreSQL masking: a raw extended-protocol batch', () => {
  // Fails if the sidecar relied on the client's own Describe to learn the columns: there is none.
  it('masks binary results of a portal the client never described', async () => {
    const bind = Buffer.concat([
      Buffer.from('\0\0'), // portal "", statement ""
      Buffer.from([0, 0]), // no parameter formats
      Buffer.from([0, 0]), // no parameters
      Buffer.from([0, 1, 0, 1]), // one result format: binary, for every column
    ]);
    const msgs = await rawSession([
      message('P', '', 'SELECT id, password, pin FROM users ORDER BY id', Buffer.from([0, 0])),
      message('B', bind),
      message('E', '', Buffer.from([0, 0, 0, 0])),
      message('S'),
    ]);
    seen.push(Buffer.concat(msgs.map((m) => m[1])).toString('latin1'));
    const types = msgs.map(([t]) => t);
    assert.deepEqual(types.slice(-6), ['1', '2', 'D', 'D', 'C', 'Z'], 'no RowDescription reaches the client');
    const rows = msgs.filter(([t]) => t === 'D').map(([, b]) => b);
    for (const row of rows) {
      // 3 columns: id int4 (4 bytes), password: the marker, pin: NULL (-1).
      assert.equal(row.readInt16BE(0), 3);
      assert.equal(row.readInt32BE(2), 4);
      assert.equal(row.readInt32BE(10), MASKED.length);
      assert.equal(row.subarray(14, 14 + MASKED.length).toString(), MASKED);
      assert.equal(row.readInt32BE(14 + MASKED.length), -1);
    }
  });
});

describe('PostgreSQL masking: the audit trail and the canary', () => {
  it('records masked statements as masked, with the rule and how many values', () => {
    const events = spoolEvents();
    const select = events.find((e) => e.chaperone.sql?.text === 'SELECT * FROM users ORDER BY id');
    assert.ok(select);
    assert.equal(select.chaperone.decision.action, 'mask');
    assert.equal(select.chaperone.decision.rule, 'mask-credentials');
    assert.equal(select.chaperone.maskedFields, 4);
    const copy = events.filter(
      (e) => e.chaperone.sql?.text?.startsWith('COPY users') && e.chaperone.maskedFields > 0,
    );
    assert.equal(copy.length, 3);
    const denied = events.filter((e) => e.chaperone.decision.rule === UNMASKABLE);
    assert.ok(denied.length >= 16);
    const plain = events.find((e) => e.chaperone.sql?.text === 'SELECT id, name FROM orders');
    assert.equal(plain, undefined);
  });

  // Fails if any masked value got out: to a client, into the sidecar's log or into its spool.
  it('the canary appears nowhere: client output, sidecar log, spool', () => {
    const spool = readdirSync(guarded.sidecar.spoolDir)
      .map((f) => readFileSync(join(guarded.sidecar.spoolDir, f), 'latin1'))
      .join('\n');
    const log = readFileSync(guarded.sidecar.logFile, 'latin1');
    const clients = seen.join('\n');
    assert.ok(clients.length > 1000, 'the client output searched is there');
    for (const [what, text] of [
      ['client output', clients],
      ['sidecar log', log],
      ['audit spool', spool],
    ] as const) {
      assert.ok(!text.includes(CANARY), `the canary is not in the ${what}`);
      assert.ok(!text.includes(CANARY_HEX), `the canary (hex) is not in the ${what}`);
      assert.ok(!text.includes(String(CANARY_PIN)), `the canary pin is not in the ${what}`);
      assert.ok(!text.includes(CANARY_KEY_MD5), `the canary key's md5 is not in the ${what}`);
    }
    // The canary is still in the table: masking changed what the agent saw, not the data.
    return guarded.direct(async (c) => {
      const r = await c.query('SELECT password FROM users WHERE id = 1');
      assert.equal(r.rows[0].password, CANARY);
    });
  });
});
