import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  type AckMessage,
  type AuditEvent,
  ChaperoneError,
  CLOSE_CODES,
  chainIdFor,
  encodeMessage,
  GENESIS_HASH,
  MAX_SEQ,
  type NackMessage,
  type ServerMessage,
} from '@chaperone/shared';
import { type ObjectFacts, PodAdmission } from '../auth/pod-admission.ts';
import type { AuditStore, IncomingWrite } from '../store/store.ts';
import { ClosedError, type Connection, connectIngest, streamEvents } from '../testing/ingest-client.ts';
import { makeChain } from '../testing/test-events.ts';
import {
  type PodClaims,
  QUERY_TOKEN,
  startTestCollector,
  type TestCollector,
} from '../testing/test-harness.ts';

const POD: PodClaims & { sidecarId: string } = {
  namespace: 'agents',
  pod: 'agent-0',
  podUID: 'uid-agent-0',
  serviceAccount: 'agent',
  sidecarId: 'agents/agent-0/uid-agent-0',
};
const SOURCE = { ...POD, pod: POD.pod as string };

async function open(c: TestCollector, token: string): Promise<Extract<Connection, { ok: true }>> {
  const conn = await connectIngest({ url: c.url, token });
  assert.ok(conn.ok, conn.ok ? '' : `refused: ${conn.status} ${conn.body}`);
  return conn;
}

async function hello(
  conn: Extract<Connection, { ok: true }>,
  sidecarId = POD.sidecarId,
): Promise<ServerMessage> {
  conn.ws.send(encodeMessage({ type: 'hello', sidecarId, schemaVersion: 1 }));
  return conn.messages.next();
}

function closed(conn: Extract<Connection, { ok: true }>): Promise<{ code: number; reason: string }> {
  return conn.messages.next().then(
    (m) => {
      throw new Error(`expected the connection to close, got ${JSON.stringify(m)}`);
    },
    (err: unknown) => {
      assert.ok(err instanceof ClosedError, String(err));
      return { code: err.code, reason: err.reason };
    },
  );
}

describe('ingest server', () => {
  let c: TestCollector;
  beforeEach(async () => {
    c = await startTestCollector();
  });
  afterEach(async () => {
    await c.close();
  });

  it('welcomes a sidecar, acknowledges a committed batch and recognises a resend', async () => {
    const conn = await open(c, await c.issuer.token(POD));
    assert.deepEqual(await hello(conn), { type: 'welcome', head: { seq: 0, hash: GENESIS_HASH } });
    const events = makeChain(SOURCE, 20);
    conn.ws.send(encodeMessage({ type: 'batch', batchId: 7, events }));
    assert.deepEqual(await conn.messages.next(), {
      type: 'ack',
      batchId: 7,
      upToSeq: 20,
      stored: 20,
      duplicates: 0,
    });
    conn.ws.send(encodeMessage({ type: 'batch', batchId: 8, events: events.slice(10) }));
    assert.deepEqual(await conn.messages.next(), {
      type: 'ack',
      batchId: 8,
      upToSeq: 20,
      stored: 0,
      duplicates: 10,
    });
    conn.ws.close();
    // A new connection resumes after the durable head.
    const again = await open(c, await c.issuer.token(POD));
    assert.deepEqual(await hello(again), {
      type: 'welcome',
      head: { seq: 20, hash: events[19]?.chaperone.hash },
    });
    again.ws.close();
    assert.equal((await c.store.stats()).events, 20);
    const metrics = await c.registry.getSingleMetricAsString('chaperone_collector_events_total');
    assert.match(
      metrics,
      /chaperone_collector_events_total\{protocol="kubernetes",action="allow",component="collector"\} 20/,
    );
  });

  it('refuses connections without a valid token for this collector, saying why', async () => {
    const cases: [string, Promise<string | undefined>, number, RegExp][] = [
      ['no token', Promise.resolve(undefined), 401, /Authorization: Bearer/],
      ['garbage', Promise.resolve('not-a-jwt'), 401, /not valid/],
      ['expired', c.issuer.token(POD, { expiresInSec: -600 }), 401, /expired/],
      ['wrong audience', c.issuer.token(POD, { audience: 'kubernetes' }), 401, /audience/],
      ['wrong issuer', c.issuer.token(POD, { issuer: 'https://elsewhere' }), 401, /issuer/],
      ['not bound to a pod', c.issuer.token({ ...POD, pod: undefined }), 403, /not bound to a pod/],
    ];
    const { TestIssuer } = await import('../testing/test-harness.ts');
    const stranger = await TestIssuer.create('other-key');
    cases.push(['signed by another key', stranger.token(POD), 401, /key this cluster does not publish/]);
    for (const [name, token, status, message] of cases) {
      const t = await token;
      const conn = await connectIngest({ url: c.url, ...(t ? { token: t } : {}) });
      assert.equal(conn.ok, false, name);
      if (!conn.ok) {
        assert.equal(conn.status, status, name);
        const body = JSON.parse(conn.body) as { error: { message: string } };
        assert.match(body.error.message, message, name);
      }
    }
    const wrongProtocol = await connectIngest({
      url: c.url,
      token: await c.issuer.token(POD),
      subprotocol: 'v4.channel.k8s.io',
    });
    assert.equal(wrongProtocol.ok, false);
    assert.equal(!wrongProtocol.ok && wrongProtocol.status, 400);
    const failures = await c.registry.getSingleMetricAsString('chaperone_collector_auth_failures_total');
    assert.match(failures, /code="unauthenticated"[^}]*\} 6/);
  });

  it('refuses events that name another pod, and records an integrity alert', async () => {
    const conn = await open(c, await c.issuer.token(POD));
    await hello(conn);
    const other = { ...SOURCE, pod: 'agent-1' };
    conn.ws.send(encodeMessage({ type: 'batch', batchId: 1, events: makeChain(other, 3).map((e) => e) }));
    const nack = (await conn.messages.next()) as NackMessage;
    assert.equal(nack.type, 'nack');
    assert.equal(nack.code, 'identity_mismatch');
    assert.equal(nack.retryable, false);
    assert.match(nack.message, /pod "agent-1"/);
    assert.equal((await c.store.stats()).events, 0);
    const alerts = await c.store.listAlerts({ kind: 'identity_mismatch' }, 10);
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0]?.pod, 'agent-0', 'the alert names the authenticated pod');
    conn.ws.close();
  });

  it("closes a connection that claims another pod's chain (4403)", async () => {
    const first = await open(c, await c.issuer.token(POD));
    await hello(first);
    first.ws.send(encodeMessage({ type: 'batch', batchId: 1, events: makeChain(SOURCE, 2) }));
    assert.equal((await first.messages.next()).type, 'ack');
    first.ws.close();
    const thief = await open(c, await c.issuer.token({ ...POD, pod: 'agent-9', podUID: 'uid-9' }));
    thief.ws.send(encodeMessage({ type: 'hello', sidecarId: POD.sidecarId, schemaVersion: 1 }));
    const r = await closed(thief);
    assert.equal(r.code, CLOSE_CODES.forbidden);
    assert.match(r.reason, /only its own pod/);
    assert.deepEqual(
      (await c.store.listAlerts({}, 10)).map((a) => a.kind),
      ['chain_owner_mismatch'],
    );
  });

  // Fails when the product lets a hello name any chain (drop the chainRefusal check in
  // IngestServer #hello): pod B is welcomed to pod C's chain, stores its own events
  // there, and C is locked out of its chain for good. Tried: both assertions fail.
  it("a pod's token cannot open or lock another pod's chain before that pod connects", async () => {
    const c9 = { namespace: 'agents', pod: 'agent-9', podUID: 'uid-9', serviceAccount: 'agent' };
    const c9Chain = chainIdFor(c9);
    const thief = await open(c, await c.issuer.token(POD));
    thief.ws.send(encodeMessage({ type: 'hello', sidecarId: c9Chain, schemaVersion: 1 }));
    // Were it welcomed, B would store its own (correctly sourced) events under C's chain id.
    thief.ws.send(
      encodeMessage({ type: 'batch', batchId: 1, events: makeChain({ ...SOURCE, sidecarId: c9Chain }, 2) }),
    );
    const r = await closed(thief);
    assert.equal(r.code, CLOSE_CODES.forbidden);
    assert.equal(await c.store.chain(c9Chain), undefined, 'nothing was stored under the chain');
    // The same pod name with another uid (a re-created pod) is another chain, refused too.
    const stale = await open(c, await c.issuer.token({ ...c9, podUID: 'uid-old' }));
    stale.ws.send(encodeMessage({ type: 'hello', sidecarId: c9Chain, schemaVersion: 1 }));
    assert.equal((await closed(stale)).code, CLOSE_CODES.forbidden);
    // The rightful owner opens its chain as if nothing had happened.
    const owner = await open(c, await c.issuer.token(c9));
    assert.deepEqual(await hello(owner, c9Chain), {
      type: 'welcome',
      head: { seq: 0, hash: GENESIS_HASH },
    });
    owner.ws.send(
      encodeMessage({ type: 'batch', batchId: 1, events: makeChain({ ...c9, sidecarId: c9Chain }, 2) }),
    );
    assert.equal((await owner.messages.next()).type, 'ack');
    owner.ws.close();
    const alerts = await c.store.listAlerts({ kind: 'chain_owner_mismatch' }, 10);
    assert.equal(alerts.length, 2);
    assert.match(alerts[0]?.message ?? '', /opens only chain/);
  });

  // Fails when the bounds go: drop `max: MAX_SEQ` in audit-event.ts (the first nack becomes an
  // ack and the chain head jumps to 2^50 + 1), or drop batchBoundsProblem from #batch (the
  // descending and future batches are stored). Tried: each fails.
  it('refuses out-of-range numbers per batch, saying which and why', async () => {
    const conn = await open(c, await c.issuer.token(POD));
    await hello(conn);
    const fixed = { spec: () => ({ time: new Date(Date.UTC(2026, 0, 15)) }) };
    const huge = makeChain(SOURCE, 1, { startSeq: MAX_SEQ + 1, ...fixed });
    conn.ws.send(encodeMessage({ type: 'batch', batchId: 1, events: huge }));
    const two = makeChain(SOURCE, 2);
    conn.ws.send(encodeMessage({ type: 'batch', batchId: 2, events: [two[1], two[0]] as AuditEvent[] }));
    const future = makeChain(SOURCE, 1, { spec: () => ({ time: new Date(Date.now() + 3 * 86_400_000) }) });
    conn.ws.send(encodeMessage({ type: 'batch', batchId: 3, events: future }));
    const ancient = makeChain(SOURCE, 1, { spec: () => ({ time: new Date(Date.UTC(1970, 0, 2)) }) });
    conn.ws.send(encodeMessage({ type: 'batch', batchId: 4, events: ancient }));
    const nacks: NackMessage[] = [];
    for (let i = 0; i < 4; i++) nacks.push((await conn.messages.next()) as NackMessage);
    assert.deepEqual(
      nacks.map((n) => [n.type, n.batchId, n.code, n.retryable]),
      [1, 2, 3, 4].map((id) => ['nack', id, 'invalid_event', false]),
    );
    assert.match(nacks[0]?.message ?? '', /\/events\/0\/chaperone\/seq.*at most 1125899906842624/);
    assert.match(nacks[1]?.message ?? '', /\/events\/1\/chaperone\/seq: seq 1 follows seq 2/);
    assert.match(nacks[2]?.message ?? '', /\/events\/0\/requestReceivedTimestamp: .*check the node's clock/);
    assert.match(nacks[3]?.message ?? '', /requestReceivedTimestamp/);
    assert.equal((await c.store.stats()).events, 0);
    assert.equal(await c.store.chain(POD.sidecarId), undefined);
    conn.ws.close();
  });

  it('answers bad input per batch with a reason, leaving the store untouched', async () => {
    const conn = await open(c, await c.issuer.token(POD));
    await hello(conn);
    const good = makeChain(SOURCE, 2);
    conn.ws.send(encodeMessage({ type: 'batch', batchId: 1, events: good }));
    assert.equal((await conn.messages.next()).type, 'ack');
    const send = (text: string) => conn.ws.send(text);
    const v2 = { ...good[0], chaperone: { ...good[0]?.chaperone, schemaVersion: 2 } };
    send(JSON.stringify({ type: 'batch', batchId: 2, events: [v2] }));
    send(JSON.stringify({ type: 'batch', batchId: 3, events: [{ ...good[0], verb: 42 }] }));
    send(JSON.stringify({ type: 'batch', batchId: 4, events: Array.from({ length: 1001 }, () => good[0]) }));
    send(JSON.stringify({ type: 'batch', batchId: 5, events: [] }));
    const answers = [] as NackMessage[];
    for (let i = 0; i < 4; i++) answers.push((await conn.messages.next()) as NackMessage);
    assert.deepEqual(
      answers.map((a) => [a.type, a.batchId, a.code, a.retryable]),
      [
        ['nack', 2, 'schema_version', false],
        ['nack', 3, 'invalid_event', false],
        ['nack', 4, 'too_large', false],
        ['nack', 5, 'malformed', false],
      ],
    );
    assert.match(answers[0]?.message ?? '', /unsupported schema version 2/);
    assert.match(answers[1]?.message ?? '', /\/events\/0\/verb/);
    assert.match(answers[2]?.message ?? '', /1001 events; the limit is 1000/);
    // Still usable afterwards, and nothing else was stored.
    const more = makeChain(SOURCE, 3, { startSeq: 3, prevHash: good[1]?.chaperone.hash as string });
    conn.ws.send(encodeMessage({ type: 'batch', batchId: 6, events: more }));
    assert.deepEqual(await conn.messages.next(), {
      type: 'ack',
      batchId: 6,
      upToSeq: 5,
      stored: 3,
      duplicates: 0,
    });
    assert.equal((await c.store.stats()).events, 5);
    // Not JSON at all: nothing to answer per batch, so the connection is closed with the reason.
    send('{"type":"batch", nope');
    const r = await closed(conn);
    assert.equal(r.code, CLOSE_CODES.protocolError);
    assert.match(r.reason, /not JSON/);
  });

  it('requires hello first and only once', async () => {
    const a = await open(c, await c.issuer.token(POD));
    a.ws.send(encodeMessage({ type: 'batch', batchId: 1, events: makeChain(SOURCE, 1) }));
    assert.equal((await closed(a)).code, CLOSE_CODES.protocolError);
    const b = await open(c, await c.issuer.token(POD));
    await hello(b);
    b.ws.send(encodeMessage({ type: 'hello', sidecarId: POD.sidecarId, schemaVersion: 1 }));
    assert.match((await closed(b)).reason, /already/);
    const d = await open(c, await c.issuer.token(POD));
    d.ws.send(encodeMessage({ type: 'hello', sidecarId: POD.sidecarId, schemaVersion: 9 }));
    assert.match((await closed(d)).reason, /schema version 9/);
  });

  it('closes the connection when its token expires (4401)', async () => {
    // Expired two seconds ago: still inside the verifier's clock tolerance, so the upgrade succeeds.
    const conn = await open(c, await c.issuer.token(POD, { expiresInSec: -2 }));
    const r = await closed(conn);
    assert.equal(r.code, CLOSE_CODES.unauthenticated);
    assert.match(r.reason, /expired/);
  });

  it('records tampered and missing events as integrity alerts and still stores them', async () => {
    const conn = await open(c, await c.issuer.token(POD));
    await hello(conn);
    const events = makeChain(SOURCE, 6);
    const tampered = { ...events[1], requestURI: '/api/v1/namespaces/agents/secrets/other' } as AuditEvent;
    conn.ws.send(
      encodeMessage({
        type: 'batch',
        batchId: 1,
        events: [events[0] as AuditEvent, tampered, ...events.slice(4)],
      }),
    );
    const ack = (await conn.messages.next()) as AckMessage;
    assert.deepEqual(ack, { type: 'ack', batchId: 1, upToSeq: 6, stored: 4, duplicates: 0 });
    assert.deepEqual((await c.store.listAlerts({}, 10)).map((a) => [a.kind, a.seq]).sort(), [
      ['gap', 5],
      ['hash_mismatch', 2],
    ]);
    const m = await c.registry.getSingleMetricAsString('chaperone_collector_integrity_alerts_total');
    assert.match(m, /kind="gap"[^}]*\} 1/);
    assert.match(m, /kind="hash_mismatch"[^}]*\} 1/);
    conn.ws.close();
  });

  it('serves what was ingested through the query API', async () => {
    const events = makeChain(SOURCE, 30, {
      spec: (i) => (i % 3 === 0 ? { action: 'deny', rule: 'no-secrets', resource: 'secrets' } : {}),
    });
    await streamEvents({ url: c.url, token: () => 't', sidecarId: POD.sidecarId, events, batchSize: 7 }).then(
      () => assert.fail('a bad token must be refused'),
      (err: Error) => assert.match(err.message, /401/),
    );
    const token = await c.issuer.token(POD);
    const r = await streamEvents({
      url: c.url,
      token: () => token,
      sidecarId: POD.sidecarId,
      events,
      batchSize: 7,
    });
    assert.equal(r.head.seq, 30);
    const res = await fetch(`${c.queryUrl}/v1/events?decision=deny&limit=4`, {
      headers: { authorization: `Bearer ${QUERY_TOKEN}` },
    });
    assert.equal(res.status, 200);
    const page = (await res.json()) as { items: AuditEvent[]; nextCursor?: string };
    assert.deepEqual(
      page.items.map((e) => e.chaperone.seq),
      [30, 27, 24, 21],
    );
    assert.ok(page.nextCursor);
    const jsonl = await fetch(
      `${c.queryUrl}/v1/events?decision=deny&format=jsonl&cursor=${page.nextCursor}`,
      {
        headers: { authorization: `Bearer ${QUERY_TOKEN}` },
      },
    );
    assert.equal(jsonl.headers.get('content-type'), 'application/x-ndjson');
    const lines = (await jsonl.text()).trim().split('\n');
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as AuditEvent).chaperone.seq),
      [18, 15, 12, 9, 6, 3],
    );
    const denied = await fetch(`${c.queryUrl}/v1/events`, {
      headers: { authorization: 'Bearer wrong-token-wrong-token' },
    });
    assert.equal(denied.status, 401);
    assert.match(((await denied.json()) as { error: { message: string } }).error.message, /not valid/);
    const anonymous = await fetch(`${c.queryUrl}/v1/events`);
    assert.equal(anonymous.status, 401);
    const bad = await fetch(`${c.queryUrl}/v1/events?decision=maybe`, {
      headers: { authorization: `Bearer ${QUERY_TOKEN}` },
    });
    assert.equal(bad.status, 400);
  });
});

describe('ingest ordering and back-pressure', () => {
  it('refuses batches after a lost one until it is resent, so no false gap is recorded', async () => {
    let failNext = true;
    const c = await startTestCollector({
      wrapStore: (s) =>
        wrap(s, async (batches, append) => {
          if (failNext) {
            failNext = false;
            throw new Error('disk full');
          }
          return append(batches);
        }),
    });
    try {
      const conn = await open(c, await c.issuer.token(POD));
      await hello(conn);
      const events = makeChain(SOURCE, 6);
      conn.ws.send(encodeMessage({ type: 'batch', batchId: 1, events: events.slice(0, 3) }));
      const first = (await conn.messages.next()) as NackMessage;
      assert.deepEqual([first.type, first.code, first.retryable], ['nack', 'unavailable', true]);
      conn.ws.send(encodeMessage({ type: 'batch', batchId: 2, events: events.slice(3) }));
      const second = (await conn.messages.next()) as NackMessage;
      assert.deepEqual([second.type, second.code, second.retryable], ['nack', 'out_of_order', true]);
      assert.match(second.message, /resend from seq 1/);
      conn.ws.send(encodeMessage({ type: 'batch', batchId: 3, events: events.slice(0, 3) }));
      conn.ws.send(encodeMessage({ type: 'batch', batchId: 4, events: events.slice(3) }));
      assert.equal(((await conn.messages.next()) as AckMessage).upToSeq, 3);
      assert.equal(((await conn.messages.next()) as AckMessage).upToSeq, 6);
      assert.deepEqual(await c.store.listAlerts({}, 10), []);
      conn.ws.close();
    } finally {
      await c.close();
    }
  });

  it('stops reading a connection while its batches wait for a slow store, then catches up', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let appended = 0;
    const c = await startTestCollector({
      maxQueueEvents: 1000,
      groupEvents: 100,
      wrapStore: (s) =>
        wrap(s, async (batches, append) => {
          await gate;
          appended += batches.length;
          return append(batches);
        }),
    });
    try {
      const conn = await open(c, await c.issuer.token(POD));
      await hello(conn);
      const events = makeChain(SOURCE, 4000);
      // A misbehaving client that ignores the in-flight limit and sends 40 batches at once.
      for (let i = 0; i < 40; i++)
        conn.ws.send(
          encodeMessage({ type: 'batch', batchId: i, events: events.slice(i * 100, i * 100 + 100) }),
        );
      await waitUntil(async () => (await gaugeValue(c, 'chaperone_collector_paused_connections')) === 1);
      const queued = c.queue.depth.events;
      assert.ok(queued <= 1000 + 100, `the queue holds at most its limit plus one batch, held ${queued}`);
      release();
      const acks: number[] = [];
      while (acks.length < 40) {
        const m = await conn.messages.next();
        assert.equal(m.type, 'ack');
        acks.push((m as AckMessage).batchId);
      }
      assert.deepEqual(
        acks,
        Array.from({ length: 40 }, (_, i) => i),
      );
      assert.ok(appended > 0);
      assert.equal((await c.store.stats()).events, 4000);
      assert.equal(await gaugeValue(c, 'chaperone_collector_paused_connections'), 0);
      conn.ws.close();
    } finally {
      await c.close();
    }
  });

  it('never stores an event twice when one sidecar streams over two connections at once', async () => {
    const c = await startTestCollector();
    try {
      const events = makeChain(SOURCE, 3000);
      const token = await c.issuer.token(POD);
      const stream = () =>
        streamEvents({ url: c.url, token: () => token, sidecarId: POD.sidecarId, events, batchSize: 250 });
      const [a, b] = await Promise.all([stream(), stream()]);
      assert.equal(a.head.seq, 3000);
      assert.equal(b.head.seq, 3000);
      assert.equal((await c.store.stats()).events, 3000);
      assert.deepEqual(await c.store.listAlerts({}, 10), []);
    } finally {
      await c.close();
    }
  });
});

/** The store with its group commit (what the write queue calls) going through `commit`. */
function wrap(
  s: AuditStore,
  commit: (
    b: readonly IncomingWrite[],
    next: (w: readonly IncomingWrite[]) => Promise<readonly unknown[]>,
  ) => Promise<readonly unknown[]>,
): AuditStore {
  return new Proxy(s, {
    get(target, prop, receiver) {
      if (prop === 'commit') return (b: readonly IncomingWrite[]) => commit(b, (x) => target.commit(x));
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

async function gaugeValue(c: TestCollector, name: string): Promise<number> {
  const m = (await c.registry.getSingleMetric(name)?.get())?.values[0]?.value;
  return m ?? 0;
}

async function waitUntil(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('condition not reached');
}

describe('ingest server: which pods may connect', () => {
  /** The API server's view for these tests: which pods exist and are labelled, which namespaces opted in. */
  const cluster = {
    pods: new Map<string, ObjectFacts>(),
    namespaces: new Map<string, ObjectFacts>(),
    down: false,
    async pod(namespace: string, name: string) {
      if (this.down) throw new ChaperoneError('unavailable', 'connection refused');
      return this.pods.get(`${namespace}/${name}`);
    },
    async namespace(name: string) {
      if (this.down) throw new ChaperoneError('unavailable', 'connection refused');
      return this.namespaces.get(name);
    },
  };
  let c: TestCollector;
  beforeEach(async () => {
    cluster.pods.clear();
    cluster.namespaces.clear();
    cluster.down = false;
    c = await startTestCollector({ admission: new PodAdmission({ lookup: cluster }) });
  });
  afterEach(async () => {
    await c.close();
  });

  // Fails when the ingest server does not ask (drop `admission?.check` in handleUpgrade): every
  // refused token below is upgraded. Tried: the test fails on the first refusal.
  it('refuses, before the upgrade, tokens of pods Chaperone did not inject in an opted-in namespace', async () => {
    const injected = { uid: POD.podUID as string, labels: { 'chaperone.dev/injected': 'true' } };
    cluster.pods.set('agents/agent-0', injected);
    cluster.namespaces.set('plain', { uid: 'n1', labels: {} });
    cluster.pods.set('plain/agent-0', injected);
    cluster.namespaces.set('agents', { uid: 'n0', labels: { 'chaperone.dev/inject': 'enabled' } });
    cluster.pods.set('agents/bare', { uid: 'uid-bare', labels: {} });
    const cases: [string, PodClaims, RegExp][] = [
      ['namespace not opted in', { ...POD, namespace: 'plain' }, /namespace plain is not opted in/],
      ['pod without the injected label', { ...POD, pod: 'bare', podUID: 'uid-bare' }, /injected=true/],
      ['pod that does not exist', { ...POD, pod: 'ghost', podUID: 'uid-ghost' }, /does not exist/],
      ['pod re-created under the same name', { ...POD, podUID: 'uid-old' }, /no longer exists/],
    ];
    for (const [name, claims, reason] of cases) {
      const conn = await connectIngest({ url: c.url, token: await c.issuer.token(claims) });
      assert.equal(conn.ok, false, name);
      if (!conn.ok) {
        assert.equal(conn.status, 403, name);
        const body = JSON.parse(conn.body) as { error: { code: string; message: string } };
        assert.equal(body.error.code, 'forbidden', name);
        assert.match(body.error.message, reason, name);
      }
    }
    const conn = await open(c, await c.issuer.token(POD));
    assert.equal((await hello(conn)).type, 'welcome');
    conn.ws.close();
    // The API server unreachable, for a pod never admitted: 503, try again.
    cluster.down = true;
    const later = await connectIngest({
      url: c.url,
      token: await c.issuer.token({ ...POD, pod: 'agent-5', podUID: 'uid-5' }),
    });
    assert.equal(!later.ok && later.status, 503);
  });

  // Fails when #hello offers whatever head the store returns (drop the range check): the
  // client is welcomed with seq 2^50 + 1. Tried: it fails.
  it('never offers a stored head out of range in welcome', async () => {
    await c.close();
    c = await startTestCollector({
      wrapStore: (s) =>
        new Proxy(s, {
          get(target, prop, receiver) {
            if (prop === 'chain')
              return async (id: string) => ({
                ...(await target.chain(id)),
                sidecarId: id,
                owner: SOURCE,
                head: { seq: MAX_SEQ + 1, hash: GENESIS_HASH },
              });
            const v = Reflect.get(target, prop, receiver);
            return typeof v === 'function' ? v.bind(target) : v;
          },
        }) as AuditStore,
    });
    const conn = await open(c, await c.issuer.token(POD));
    conn.ws.send(encodeMessage({ type: 'hello', sidecarId: POD.sidecarId, schemaVersion: 1 }));
    const r = await closed(conn);
    assert.equal(r.code, CLOSE_CODES.internalError);
  });
});
