// The query API on its own listener, and query rights scoped by namespace. Two pods in
// team-a and team-b ship events through real ingest; a team-a token, a team-a+team-c token
// and an every-namespace token then read every route. Each assertion names the change to
// http-api.ts or test-harness.ts/collector.ts that makes it fail; each was tried.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import { scopedTokenAuth } from '../auth/query-auth.ts';
import { streamEvents } from '../testing/ingest-client.ts';
import { makeChain } from '../testing/test-events.ts';
import { startTestCollector, type TestCollector } from '../testing/test-harness.ts';

const A = {
  namespace: 'team-a',
  pod: 'a-0',
  podUID: 'ua',
  serviceAccount: 'agent',
  sidecarId: 'team-a/a-0/ua',
};
const B = {
  namespace: 'team-b',
  pod: 'b-0',
  podUID: 'ub',
  serviceAccount: 'agent',
  sidecarId: 'team-b/b-0/ub',
};
const TOKENS = {
  all: 'all-namespaces-token-0123456789',
  a: 'team-a-only-token-0123456789',
  ac: 'team-a-and-c-token-0123456789',
};
const SESSION = 'sess-shared';

describe('query API: separate listener, namespace scopes', () => {
  let c: TestCollector;
  let eventsA: AuditEvent[];
  let eventsB: AuditEvent[];
  before(async () => {
    c = await startTestCollector({
      auth: scopedTokenAuth([
        { token: TOKENS.all, name: 'security', namespaces: '*' },
        { token: TOKENS.a, name: 'team-a-reader', namespaces: new Set(['team-a']) },
        { token: TOKENS.ac, name: 'a-and-c', namespaces: new Set(['team-a', 'team-c']) },
      ]),
    });
    // Both pods put events in one session id: a session id is the sidecar's claim.
    eventsA = makeChain(A, 6, { spec: (i) => (i <= 2 ? { sessionId: SESSION, protocol: 'exec' } : {}) });
    // rec-b: a session only team-b's events name (a sidecar records only sessions its events name).
    eventsB = makeChain(B, 4, {
      spec: (i) =>
        i === 1 ? { sessionId: SESSION, protocol: 'exec' } : i === 4 ? { sessionId: 'rec-b' } : {},
    });
    for (const [src, events] of [
      [A, eventsA],
      [B, eventsB],
    ] as const) {
      const token = await c.issuer.token(src);
      await streamEvents({
        url: c.url,
        token: () => token,
        sidecarId: src.sidecarId,
        events,
        deadlineMs: 10_000,
      });
    }
    await c.store.appendRecording('rec-b', B.sidecarId, B, 0, '{"version":2,"width":80,"height":24}\n');
    await c.store.appendRecording(SESSION, B.sidecarId, B, 0, '{"version":2,"width":80,"height":24}\n');
    const alert = (ns: string, sidecarId: string, i: number) => ({
      kind: 'gap' as const,
      sidecarId,
      namespace: ns,
      pod: 'p',
      seq: i,
      detectedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      message: `gap ${ns} ${i}`,
    });
    await c.store.recordAlerts([
      alert('team-a', A.sidecarId, 1),
      alert('team-b', B.sidecarId, 2),
      alert('team-c', 'team-c/c/u', 3),
      alert('team-a', A.sidecarId, 4),
    ]);
  });
  after(async () => {
    await c?.close();
  });

  const get = async (token: string, path: string) => {
    const res = await fetch(`${c.queryUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const namespacesOf = (items: unknown) =>
    [...new Set((items as AuditEvent[]).map((e) => e.chaperone.source.namespace))].sort();

  // Fails if the ingest listener answers with the query API instead of createIngestPortApi
  // (test-harness.ts and collector.ts wire the two alike): tried, /v1/events then answers 200.
  it('does not serve the query API on the ingest port, and points at the query listener', async () => {
    const res = await fetch(`${c.url}/v1/events`, { headers: { authorization: `Bearer ${TOKENS.all}` } });
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: { message: string } };
    assert.match(body.error.message, new RegExp(`query listener .*${new URL(c.queryUrl).port}`));
    for (const path of ['/v1/alerts', '/v1/chains', `/v1/sessions/${SESSION}`, '/v1/events/x', '//']) {
      const r = await fetch(`${c.url}${path}`, { headers: { authorization: `Bearer ${TOKENS.all}` } });
      assert.equal(r.status, 404, path);
    }
    assert.equal((await fetch(`${c.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${c.url}/readyz`)).status, 200);
    assert.equal((await fetch(`${c.queryUrl}/readyz`)).status, 200);
  });

  // Fails if http-entry.ts stops refusing upgrades where no ingest is attached (the query
  // listener): tried (the socket is then dropped unanswered).
  it('refuses WebSocket upgrades on the query listener', async () => {
    const port = Number(new URL(c.queryUrl).port);
    const status = await new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () =>
        s.write(
          'GET /v1/ingest HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        ),
      );
      s.once('data', (d: Buffer) => {
        resolve(d.toString('latin1'));
        s.destroy();
      });
      s.on('error', reject);
      s.on('close', () => resolve('closed without an answer'));
    });
    assert.match(status, /^HTTP\/1\.1 404 /);
    assert.match(status, /ingest port/);
  });

  // Fails if events() no longer narrows an unfiltered query to the token's namespaces: tried.
  it('narrows unfiltered event queries to the token namespaces, in every order', async () => {
    for (const order of ['desc', 'asc', 'arrival']) {
      const a = await get(TOKENS.a, `/v1/events?limit=100&order=${order}`);
      assert.equal(a.status, 200);
      assert.deepEqual(namespacesOf(a.body.items), ['team-a'], order);
      assert.equal((a.body.items as unknown[]).length, eventsA.length, order);
    }
    const ac = await get(TOKENS.ac, '/v1/events?limit=100');
    assert.deepEqual(namespacesOf(ac.body.items), ['team-a']);
    const all = await get(TOKENS.all, '/v1/events?limit=100');
    assert.deepEqual(namespacesOf(all.body.items), ['team-a', 'team-b']);
    // A filter that names no namespace stays narrowed (sidecarId of another namespace: nothing).
    const other = await get(TOKENS.a, `/v1/events?sidecarId=${encodeURIComponent(B.sidecarId)}`);
    assert.deepEqual(other.body.items, []);
  });

  // Fails if checkNamespaces() is skipped when a namespace is named: tried (team-b's events leak).
  it('answers 403 when a scoped token names another namespace', async () => {
    for (const q of ['namespace=team-b', 'namespace=team-a,team-b', 'namespace=team-a&namespace=team-b']) {
      const r = await get(TOKENS.a, `/v1/events?${q}`);
      assert.equal(r.status, 403, q);
      assert.match(JSON.stringify(r.body), /team-a-reader may not read namespace team-b/);
    }
    assert.equal((await get(TOKENS.a, '/v1/alerts?namespace=team-b')).status, 403);
    const own = await get(TOKENS.a, '/v1/events?namespace=team-a');
    assert.equal(own.status, 200);
    assert.deepEqual(namespacesOf(own.body.items), ['team-a']);
    assert.equal((await get(TOKENS.all, '/v1/events?namespace=team-b')).status, 200);
  });

  // Fails if the by-id, session or recording routes skip visibleTo(): tried.
  it('reads events, sessions and recordings of other namespaces as absent', async () => {
    const idB = (eventsB[2] as AuditEvent).auditID;
    const idA = (eventsA[2] as AuditEvent).auditID;
    assert.equal((await get(TOKENS.a, `/v1/events/${idB}`)).status, 404);
    assert.equal((await get(TOKENS.a, `/v1/events/${idA}`)).status, 200);
    assert.equal((await get(TOKENS.all, `/v1/events/${idB}`)).status, 200);

    const sessA = await get(TOKENS.a, `/v1/sessions/${SESSION}`);
    assert.equal(sessA.status, 200);
    assert.deepEqual(namespacesOf(sessA.body.events), ['team-a']);
    assert.equal(sessA.body.recording, false, "team-b's recording of the shared session id");
    const sessAll = await get(TOKENS.all, `/v1/sessions/${SESSION}`);
    assert.deepEqual(namespacesOf(sessAll.body.events), ['team-a', 'team-b']);
    assert.equal(sessAll.body.recording, true);
    const recShared = await fetch(`${c.queryUrl}/v1/sessions/${SESSION}/recording`, {
      headers: { authorization: `Bearer ${TOKENS.a}` },
    });
    assert.equal(recShared.status, 404);
    await recShared.body?.cancel();

    const recB = await fetch(`${c.queryUrl}/v1/sessions/rec-b/recording`, {
      headers: { authorization: `Bearer ${TOKENS.a}` },
    });
    assert.equal(recB.status, 404);
    await recB.body?.cancel();
    const recBAll = await fetch(`${c.queryUrl}/v1/sessions/rec-b/recording`, {
      headers: { authorization: `Bearer ${TOKENS.all}` },
    });
    assert.equal(recBAll.status, 200);
    await recBAll.body?.cancel();
  });

  // Fails if alerts() or the chains route stop narrowing to the token's namespaces: tried.
  it('lists only alerts and chains of the token namespaces, newest first across them', async () => {
    const ac = await get(TOKENS.ac, '/v1/alerts');
    assert.deepEqual(
      (ac.body.items as { message: string }[]).map((x) => x.message),
      ['gap team-a 4', 'gap team-c 3', 'gap team-a 1'],
    );
    const limited = await get(TOKENS.ac, '/v1/alerts?limit=2');
    assert.deepEqual(
      (limited.body.items as { message: string }[]).map((x) => x.message),
      ['gap team-a 4', 'gap team-c 3'],
    );
    const all = await get(TOKENS.all, '/v1/alerts');
    assert.equal((all.body.items as unknown[]).length, 4);
    const chains = await get(TOKENS.a, '/v1/chains');
    assert.deepEqual(
      (chains.body.items as { sidecarId: string }[]).map((x) => x.sidecarId),
      [A.sidecarId],
    );
    const allChains = await get(TOKENS.all, '/v1/chains');
    assert.equal((allChains.body.items as unknown[]).length, 2);
  });
});
