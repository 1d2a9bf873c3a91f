// The console's query routes (overview-routes.ts, session-routes.ts, chain-route.ts,
// report-routes.ts) over HTTP, on a real embedded store: what each answers, and that a token
// scoped to team-a never sees team-b, whether it names nothing, names team-b (403) or asks for
// team-b's session, recording or event by id. Each scoping assertion was tried against the route
// with its narrowing removed (scopedNamespaces returning `asked`/undefined, or inScope dropped)
// and fails then.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { type AuditEvent, createRegistry } from '@chaperone/shared';
import { type Principal, scopedTokenAuth } from '../auth/query-auth.ts';
import { createCollectorMetrics } from '../collector-metrics.ts';
import { prepareEvent } from '../events/incoming-event.ts';
import { microsToRfc3339, nowMicros } from '../events/time.ts';
import { generateSigningKey } from '../integrity/checkpoints-key.ts';
import { CheckpointWriter } from '../integrity/checkpoints-writer.ts';
import { SQLITE_FILE, SqliteStore } from '../store/sqlite-store.ts';
import type { Identity } from '../store/store.ts';
import { makeChain } from '../testing/test-events.ts';
import { memoryLogger } from '../testing/test-harness.ts';
import { createHttpApi } from './http-api.ts';

type Pod = Identity & { sidecarId: string };
const A: Pod = {
  namespace: 'team-a',
  pod: 'a-0',
  podUID: 'ua',
  serviceAccount: 'agent',
  sidecarId: 'team-a/a-0/ua',
};
const B: Pod = {
  namespace: 'team-b',
  pod: 'b-0',
  podUID: 'ub',
  serviceAccount: 'bot',
  sidecarId: 'team-b/b-0/ub',
};
const TOKENS = { all: 'all-namespaces-token-0123456789', a: 'team-a-only-token-0123456789' };
const NOBODY = 'no-namespace-token-0123456789';
const NOW_MS = Math.floor(Date.now() / 60_000) * 60_000;
const ago = (minutes: number) => new Date(NOW_MS - minutes * 60_000);

describe('console query routes', () => {
  let dir: string;
  let store: SqliteStore;
  let server: Server;
  let base: string;
  let eventsA: AuditEvent[];
  let eventsB: AuditEvent[];
  const key = generateSigningKey();
  let signedUs = 0;
  let writer: CheckpointWriter;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-console-routes-'));
    store = new SqliteStore({ dataDir: dir });
    eventsA = makeChain(A, 8, {
      spec: (i) =>
        i === 2
          ? {
              protocol: 'exec',
              resource: 'pods',
              subresource: 'exec',
              argv: ['sh'],
              sessionId: 'sess-a',
              time: ago(30),
            }
          : i === 3
            ? {
                verb: 'delete',
                resource: 'secrets',
                action: 'deny',
                rule: 'no-secret-deletes',
                time: ago(20),
              }
            : { verb: 'get', resource: 'configmaps', time: ago(60 - i) },
    });
    eventsB = makeChain(B, 4, {
      spec: (i) =>
        i === 1
          ? {
              protocol: 'exec',
              resource: 'pods',
              subresource: 'exec',
              argv: ['=cmd|calc'],
              sessionId: 'sess-b',
              time: ago(25),
            }
          : {
              verb: 'delete',
              resource: '=HYPERLINK("x")',
              action: 'deny',
              rule: 'b-rule',
              time: ago(15 - i),
            },
    });
    const receivedUs = nowMicros();
    signedUs = receivedUs;
    const append = async (who: Pod, events: readonly AuditEvent[]) => {
      const { sidecarId, ...identity } = who;
      const [o] = await store.append([
        {
          sidecarId,
          identity,
          events: events.map((e) => prepareEvent(e, receivedUs)),
          receivedUs,
          rejectLeadingGap: false,
        },
      ]);
      assert.equal(o?.kind, 'stored');
    };
    await append(A, eventsA.slice(0, 6));
    await append(B, eventsB);
    // A checkpoint of A's head at seq 6, signed as the collector signs them; events 7 and 8 come after it.
    writer = new CheckpointWriter({
      store,
      key,
      logger: memoryLogger([]),
      intervalMs: 60_000,
      retentionMs: 0,
      now: () => signedUs,
    });
    assert.equal(await writer.runOnce(), 2);
    await append(A, eventsA.slice(6));
    for (const [who, session] of [
      [A, 'sess-a'],
      [B, 'sess-b'],
    ] as const) {
      const { sidecarId, ...identity } = who;
      await store.appendRecording(
        session,
        sidecarId,
        identity,
        0,
        '{"version":2,"width":80,"height":24}\n[0.1,"o","hé"]\n',
      );
    }
    const scoped = scopedTokenAuth([
      { token: TOKENS.all, name: 'security', namespaces: '*' },
      { token: TOKENS.a, name: 'team-a-reader', namespaces: new Set(['team-a']) },
    ]);
    // The real store, except the read that costs the size of what is stored: the routes must not
    // load a whole recording (they read it in pieces).
    const costly = new Set<PropertyKey>(['getRecording']);
    const routesStore = new Proxy(store, {
      get(target, name) {
        if (costly.has(name))
          return () => Promise.reject(new Error(`the routes called store.${String(name)}`));
        const v = Reflect.get(target, name, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const handle = createHttpApi({
      store: routesStore,
      auth: {
        async authenticate(authorization) {
          // An OIDC-style principal for one token, to show `via` passes through.
          if (authorization === 'Bearer oidc-person-token-0123456789')
            return { subject: 'alice', namespaces: new Set(['team-b', 'team-a']), via: 'oidc' } as Principal;
          // A Kubernetes reader RBAC allows nowhere: known, with an empty scope.
          if (authorization === `Bearer ${NOBODY}`)
            return { subject: 'nobody', namespaces: new Set<string>(), via: 'tokenreview' } as Principal;
          return scoped.authenticate(authorization);
        },
      },
      logger: memoryLogger([]),
      metrics: createCollectorMetrics(createRegistry({ component: 'collector', defaultMetrics: false })),
      checkpointKey: writer.publicKey,
    });
    server = createServer((req, res) => void handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const fetchAs = (token: string, path: string) =>
    fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const get = async (token: string, path: string) => {
    const res = await fetchAs(token, path);
    return {
      status: res.status,
      body: (await res.json()) as Record<string, unknown> & { items?: unknown[] },
    };
  };

  it('says who the caller is, what it reads and how it was authenticated', async () => {
    assert.deepEqual((await get(TOKENS.all, '/v1/whoami')).body, {
      subject: 'security',
      namespaces: '*',
      via: 'static',
    });
    assert.deepEqual((await get(TOKENS.a, '/v1/whoami')).body, {
      subject: 'team-a-reader',
      namespaces: ['team-a'],
      via: 'static',
    });
    assert.deepEqual((await get('oidc-person-token-0123456789', '/v1/whoami')).body, {
      subject: 'alice',
      namespaces: ['team-a', 'team-b'],
      via: 'oidc',
    });
    assert.equal((await get('wrong-token-0123456789', '/v1/whoami')).status, 401);
  });

  it('answers the overview from the rollups, narrowed to the caller', async () => {
    const all = await get(TOKENS.all, '/v1/overview?since=24h');
    assert.equal(all.status, 200);
    const o = all.body as {
      bucketSeconds: number;
      series: { blocked: number; allowed: number }[];
      byNamespace: { namespace: string; total: number; blocked: number }[];
      latestBlocked: AuditEvent[];
      agents: { namespace: string }[];
      byRule: { rule: string }[];
    };
    assert.equal(o.bucketSeconds, 900);
    assert.deepEqual(
      o.byNamespace.map((n) => [n.namespace, n.total, n.blocked]),
      [
        ['team-a', 8, 1],
        ['team-b', 4, 3],
      ],
    );
    assert.equal(
      o.series.reduce((n, p) => n + p.blocked, 0),
      4,
    );
    assert.deepEqual(
      o.latestBlocked.map((e) => e.auditID),
      [eventsB[3], eventsB[2], eventsB[1], eventsA[2]].map((e) => e?.auditID),
    );
    // Scoped: only team-a, in every part of the answer.
    const a = (await get(TOKENS.a, '/v1/overview')).body as typeof o;
    assert.deepEqual(
      a.byNamespace.map((n) => n.namespace),
      ['team-a'],
    );
    assert.deepEqual(
      a.agents.map((x) => x.namespace),
      ['team-a'],
    );
    assert.deepEqual(
      a.latestBlocked.map((e) => e.chaperone.source.namespace),
      ['team-a'],
    );
    assert.deepEqual(
      a.byRule.map((r) => r.rule),
      ['no-secret-deletes'],
    );
    const named = await get(TOKENS.a, '/v1/overview?namespace=team-b');
    assert.equal(named.status, 403);
    assert.match(JSON.stringify(named.body), /may not read namespace team-b/);
    assert.equal((await get(TOKENS.all, '/v1/overview?protocol=ftp')).status, 400);
    assert.equal((await get(TOKENS.all, '/v1/overview?since=yesterday')).status, 400);
  });

  it('lists sessions newest first, narrowed to the caller', async () => {
    const all = await get(TOKENS.all, '/v1/sessions');
    assert.deepEqual(
      (all.body.items as { sessionId: string; recording: boolean; live: boolean; summary: string }[]).map(
        (s) => [s.sessionId, s.recording, s.live, s.summary],
      ),
      [
        ['sess-b', true, false, '=cmd|calc'],
        ['sess-a', true, false, 'sh'],
      ],
    );
    const a = await get(TOKENS.a, '/v1/sessions');
    assert.deepEqual(
      (a.body.items as { sessionId: string }[]).map((s) => s.sessionId),
      ['sess-a'],
    );
    assert.equal((await get(TOKENS.a, '/v1/sessions?namespace=team-b')).status, 403);
    assert.equal((await get(TOKENS.all, '/v1/sessions?protocol=ssh')).status, 400);
    const paged = await get(TOKENS.all, '/v1/sessions?limit=1');
    assert.equal((paged.body.items as unknown[]).length, 1);
    const next = await get(TOKENS.all, `/v1/sessions?limit=1&cursor=${paged.body.nextCursor}`);
    assert.deepEqual(
      (next.body.items as { sessionId: string }[]).map((s) => s.sessionId),
      ['sess-a'],
    );
  });

  it('serves a recording from a byte offset with its size, only within the scope', async () => {
    const whole = await fetchAs(TOKENS.a, '/v1/sessions/sess-a/recording');
    const text = await whole.text();
    const size = Buffer.byteLength(text);
    assert.equal(whole.headers.get('x-recording-size'), String(size));
    const header = Buffer.byteLength('{"version":2,"width":80,"height":24}\n');
    const rest = await fetchAs(TOKENS.a, `/v1/sessions/sess-a/recording?offset=${header}`);
    assert.equal(rest.status, 200);
    assert.equal(await rest.text(), '[0.1,"o","hé"]\n');
    const end = await fetchAs(TOKENS.a, `/v1/sessions/sess-a/recording?offset=${size}`);
    assert.deepEqual(
      [end.status, await end.text(), end.headers.get('x-recording-size')],
      [200, '', String(size)],
    );
    assert.equal((await fetchAs(TOKENS.a, `/v1/sessions/sess-a/recording?offset=${size + 1}`)).status, 400);
    assert.equal((await fetchAs(TOKENS.a, '/v1/sessions/sess-a/recording?offset=-1')).status, 400);
    assert.equal((await fetchAs(TOKENS.a, '/v1/sessions/sess-b/recording?offset=0')).status, 404);
  });

  it('serves a recording in pieces of at most `length` bytes, and whole as a download', async () => {
    const whole = Buffer.from('{"version":2,"width":80,"height":24}\n[0.1,"o","hé"]\n', 'utf8');
    const download = await fetchAs(TOKENS.a, '/v1/sessions/sess-a/recording');
    assert.deepEqual(
      [download.status, download.headers.get('content-length'), download.headers.get('content-disposition')],
      [200, String(whole.length), 'attachment; filename="sess-a.cast"'],
    );
    assert.deepEqual(Buffer.from(await download.arrayBuffer()), whole);
    // Pieces of 5 bytes (one ends inside "é"): together, the recording's bytes.
    const pieces: Buffer[] = [];
    for (let offset = 0; offset < whole.length; ) {
      const r = await fetchAs(TOKENS.a, `/v1/sessions/sess-a/recording?offset=${offset}&length=5`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-recording-size'), String(whole.length));
      const piece = Buffer.from(await r.arrayBuffer());
      assert.equal(piece.length, Math.min(5, whole.length - offset));
      pieces.push(piece);
      offset += piece.length;
    }
    assert.deepEqual(Buffer.concat(pieces), whole);
    for (const bad of [
      'offset=0&length=0',
      `offset=0&length=${4 * 1024 * 1024 + 1}`,
      'length=5',
      'offset=0&length=x',
    ])
      assert.equal((await fetchAs(TOKENS.a, `/v1/sessions/sess-a/recording?${bad}`)).status, 400, bad);
    assert.equal((await fetchAs(TOKENS.a, '/v1/sessions/sess-b/recording?offset=0&length=5')).status, 404);
    // The session's own answer says whether it has a recording, from the recording's row alone.
    const sess = await get(TOKENS.a, '/v1/sessions/sess-a');
    assert.deepEqual([sess.status, sess.body.recording], [200, true]);
  });

  it('places an event in its chain and verifies it up to the signed checkpoint', async () => {
    const e = eventsA[1] as AuditEvent;
    const r = await get(TOKENS.a, `/v1/events/${e.auditID}/chain`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, {
      sidecarId: A.sidecarId,
      seq: 2,
      hash: e.chaperone.hash,
      prevHash: eventsA[0]?.chaperone.hash,
      previous: { auditID: eventsA[0]?.auditID, seq: 1, hash: eventsA[0]?.chaperone.hash },
      next: { auditID: eventsA[2]?.auditID, seq: 3, prevHash: e.chaperone.hash },
      verified: {
        ok: true,
        checked: 6,
        problems: [],
        checkpoint: { signedAt: microsToRfc3339(signedUs), seq: 6 },
      },
    });
    const newest = await get(TOKENS.a, `/v1/events/${eventsA[7]?.auditID}/chain`);
    assert.deepEqual(
      [newest.body.next, (newest.body.verified as { checkpoint: unknown }).checkpoint],
      [null, null],
      'seq 8 is past the newest checkpoint',
    );
    assert.equal((await get(TOKENS.a, `/v1/events/${eventsB[0]?.auditID}/chain`)).status, 404);
  });

  it('finds an event changed in the database between an event and its signed head', async () => {
    const db = new DatabaseSync(join(dir, SQLITE_FILE));
    const row = db
      .prepare('SELECT event_json FROM events WHERE audit_id = ?')
      .get(eventsA[4]?.auditID as string) as {
      event_json: string;
    };
    try {
      db.prepare('UPDATE events SET event_json = ? WHERE audit_id = ?').run(
        row.event_json.replace('"get"', '"list"'),
        eventsA[4]?.auditID as string,
      );
      const r = await get(TOKENS.a, `/v1/events/${eventsA[1]?.auditID}/chain`);
      const v = r.body.verified as { ok: boolean; problems: string[] };
      assert.equal(v.ok, false);
      assert.match(v.problems.join('\n'), /seq 5\) does not hash to its stored hash/);
    } finally {
      db.prepare('UPDATE events SET event_json = ? WHERE audit_id = ?').run(
        row.event_json,
        eventsA[4]?.auditID as string,
      );
      db.close();
    }
  });

  it('reports access as JSON, CSV safe from formulas, and Markdown, narrowed to the caller', async () => {
    const json = await get(TOKENS.all, '/v1/report?since=30d');
    const rows = json.body.rows as { namespace: string; category: string; resource: string; count: number }[];
    assert.deepEqual([...new Set(rows.map((r) => r.namespace))], ['team-a', 'team-b']);
    assert.ok(typeof json.body.generatedAt === 'string');
    const a = await get(TOKENS.a, '/v1/report?since=30d');
    assert.deepEqual(
      [...new Set((a.body.rows as { namespace: string }[]).map((r) => r.namespace))],
      ['team-a'],
    );
    assert.equal((await get(TOKENS.a, '/v1/report?namespace=team-b')).status, 403);
    const csv = await fetchAs(TOKENS.all, '/v1/report?since=30d&format=csv&namespace=team-b');
    assert.match(String(csv.headers.get('content-type')), /^text\/csv/);
    const lines = (await csv.text()).split('\r\n');
    assert.equal(lines[0], 'namespace,serviceAccount,category,protocol,verb,resource,count,first,last');
    assert.ok(
      lines.some((l) => l.startsWith(`team-b,bot,denied,kubernetes,delete,"'=HYPERLINK(""x"")",3,`)),
      lines.join('\n'),
    );
    const md = await (
      await fetchAs(TOKENS.all, '/v1/report?since=30d&format=markdown&namespace=team-b')
    ).text();
    assert.match(md, /^# Access review /);
    assert.match(md, /## team-b \/ bot/);
    assert.match(md, /\| kubernetes \| delete \| `=HYPERLINK\("x"\)` \| 3 \|/);
    assert.equal((await get(TOKENS.all, '/v1/report?format=xml')).status, 400);
  });
  // Fails if an empty scope is read as "no filter" on any route (scopedNamespaces returning
  // undefined for it, or the overview's blocked list asking with no namespace): tried.
  it('a caller whose scope is empty reads nothing on any route', async () => {
    const o = await get(NOBODY, '/v1/overview?since=24h');
    assert.equal(o.status, 200);
    const overview = o.body as {
      series: { allowed: number; blocked: number }[];
      byNamespace: unknown[];
      byRule: unknown[];
      byProtocol: unknown[];
      agents: unknown[];
      latestBlocked: unknown[];
    };
    assert.deepEqual(
      [overview.byNamespace, overview.byRule, overview.byProtocol, overview.agents, overview.latestBlocked],
      [[], [], [], [], []],
    );
    assert.equal(
      overview.series.reduce((n, p) => n + p.allowed + p.blocked, 0),
      0,
    );
    for (const path of [
      '/v1/events',
      '/v1/events?order=asc',
      '/v1/events?order=arrival',
      '/v1/sessions',
      '/v1/alerts',
      '/v1/chains',
    ])
      assert.deepEqual((await get(NOBODY, path)).body.items, [], path);
    assert.deepEqual((await get(NOBODY, '/v1/report?since=30d')).body.rows, []);
    const csv = await (await fetchAs(NOBODY, '/v1/report?since=30d&format=csv')).text();
    assert.equal(csv, 'namespace,serviceAccount,category,protocol,verb,resource,count,first,last\r\n');
    for (const path of [
      `/v1/events/${eventsA[0]?.auditID}`,
      `/v1/events/${eventsB[0]?.auditID}/chain`,
      '/v1/sessions/sess-a',
      '/v1/sessions/sess-b/recording',
      '/v1/sessions/sess-a/recording?offset=0',
    ])
      assert.equal((await get(NOBODY, path)).status, 404, path);
    for (const path of [
      '/v1/events?namespace=team-a',
      '/v1/overview?namespace=team-a',
      '/v1/report?namespace=team-b',
    ])
      assert.equal((await get(NOBODY, path)).status, 403, path);
    assert.deepEqual((await get(NOBODY, '/v1/whoami')).body, {
      subject: 'nobody',
      namespaces: [],
      via: 'tokenreview',
    });
  });
});
