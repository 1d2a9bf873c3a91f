// libpq 17's direct TLS (sslnegotiation=direct) through the PostgreSQL guard: the client opens with
// a TLS ClientHello (first byte 0x16) instead of an SSLRequest, offering ALPN "postgresql". psql
// here is 15, which cannot do it, so a raw client does what libpq 17 puts on the wire: node's TLS
// client verifying the pod's local CA, then the startup message and queries inside TLS, against a
// real `chaperone sidecar` in front of the real PostgreSQL of the e2e global setup.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type GuardedDatabase,
  noDropPolicy,
  startGuardedDatabase,
  tableExists,
} from './sidecar-postgres-harness.ts';
import { errorCode, RawClient } from './sidecar-postgres-raw.ts';

const POLICY = noDropPolicy('tls');

let db: GuardedDatabase;

before(async () => {
  db = await startGuardedDatabase({
    name: 'pg-tls',
    pod: 'agent-pg-tls',
    policy: POLICY,
    setup: async (c) => {
      await c.query('CREATE TABLE kept (id int)');
    },
  });
});
after(async () => {
  await db?.stop();
});

describe('PostgreSQL guard: direct TLS (libpq 17 sslnegotiation=direct)', () => {
  // Fails if a connection opening with a ClientHello were closed or read as a startup packet, or
  // if the guard stopped judging statements once TLS is in the way.
  it('serves a client that opens with TLS, verified against the local CA, and still judges its statements', async () => {
    const { client, tls } = await RawClient.openDirectTls(db.port, 'app', db.sidecar.agentCa);
    try {
      assert.equal(tls.alpnProtocol, 'postgresql', 'ALPN postgresql, as libpq 17 requires');
      assert.ok(tls.authorized, 'the certificate verifies against the pod CA for 127.0.0.1');
      client.send(RawClient.msg('Q', 'SELECT 6 * 7 AS v'));
      const ran = await client.until('Z');
      assert.deepEqual(
        ran.filter(([t]) => t === 'D').map(([, b]) => b.subarray(6).toString()),
        ['42'],
      );
      client.send(RawClient.msg('Q', 'DROP TABLE kept'));
      const denied = await client.until('Z');
      const error = denied.find(([t]) => t === 'E');
      assert.ok(error, 'the DROP is denied');
      assert.equal(errorCode(error[1]), '42501');
      assert.match(error[1].toString(), /Tables are not dropped by agents/);
    } finally {
      client.close();
    }
    assert.ok(await tableExists(db, 'kept'), 'the table is still there');
  });

  // Fails if a direct TLS connection without ALPN "postgresql" were served: PostgreSQL 17 refuses
  // it, so that a client of another protocol is never read as a PostgreSQL one.
  it('ends a direct TLS connection that does not negotiate ALPN postgresql, saying why', async () => {
    const tls = await RawClient.directTls(db.port, db.sidecar.agentCa, []);
    const client = new RawClient(tls);
    const got = await client.untilClosed();
    const error = got.find(([t]) => t === 'E');
    assert.ok(error, 'an ErrorResponse inside TLS');
    assert.equal(errorCode(error[1]), '08P01');
    assert.match(error[1].toString(), /must negotiate ALPN "postgresql"/);
  });
});
