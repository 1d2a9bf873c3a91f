import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { type AuditEvent, canonicalJson, createRegistry } from '@chaperone/shared';
import { createCollectorMetrics } from '../collector-metrics.ts';
import { prepareEvent } from '../events/incoming-event.ts';
import { SqliteStore } from '../store/sqlite-store.ts';
import { makeChain } from '../testing/test-events.ts';
import { memoryLogger } from '../testing/test-harness.ts';
import { falcoEvent, falcoSink } from './falco-sink.ts';
import { chunksBySize, Forwarder } from './forwarder.ts';
import { lokiSink } from './loki-sink.ts';

const SOURCE = { namespace: 'agents', pod: 'agent-0', serviceAccount: 'agent', sidecarId: 'sc-0' };

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

async function receiver(handler: Handler): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, Buffer.concat(chunks).toString('utf8'), res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/**
 * Checks a body the way Loki's push handler does for JSON: streams with
 * label sets whose names are valid Prometheus label names, values of
 * [nanosecond timestamp as a decimal string, line].
 */
function checkLokiPush(body: string): { labels: Record<string, string>; ts: string; line: string }[] {
  const push = JSON.parse(body) as {
    streams: { stream: Record<string, string>; values: [string, string][] }[];
  };
  assert.ok(Array.isArray(push.streams) && push.streams.length > 0);
  const out = [];
  for (const s of push.streams) {
    for (const [k, v] of Object.entries(s.stream)) {
      assert.match(k, /^[a-zA-Z_][a-zA-Z0-9_]*$/);
      assert.equal(typeof v, 'string');
    }
    for (const [ts, line] of s.values) {
      assert.match(ts, /^\d{19}$/);
      assert.equal(typeof line, 'string');
      out.push({ labels: s.stream, ts, line });
    }
  }
  return out;
}

describe('forwarders', () => {
  let dir: string;
  let store: SqliteStore;
  const logs: string[] = [];
  const registry = createRegistry({ component: 'collector', defaultMetrics: false });
  const metrics = createCollectorMetrics(registry);
  let events: AuditEvent[];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-fwd-'));
    store = new SqliteStore({ dataDir: dir });
    events = makeChain(SOURCE, 25, {
      spec: (i) => (i % 5 === 0 ? { action: 'deny', rule: 'no-secrets', resource: 'secrets' } : {}),
    });
    const { sidecarId, ...identity } = SOURCE;
    const receivedUs = Date.now() * 1000;
    await store.append([
      {
        sidecarId,
        identity,
        events: events.map((e) => prepareEvent(e, receivedUs)),
        receivedUs,
        rejectLeadingGap: false,
      },
    ]);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function drain(f: Forwarder): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const r = await f.runOnce();
      if (r === 'idle') return;
    }
    throw new Error('forwarder did not catch up');
  }

  it('posts Kubernetes-audit EventLists that Falco reads, with the decision annotations', async () => {
    const bodies: { contentType: string; body: string }[] = [];
    const r = await receiver((req, body, res) => {
      bodies.push({ contentType: String(req.headers['content-type']), body });
      res.writeHead(200).end();
    });
    try {
      const f = new Forwarder({
        store,
        sink: falcoSink({ url: `${r.url}/k8s-audit` }),
        logger: memoryLogger(logs),
        metrics,
        batchSize: 10,
      });
      await drain(f);
      assert.equal(bodies.length, 3);
      const items: AuditEvent[] = [];
      for (const b of bodies) {
        assert.equal(b.contentType, 'application/json');
        const list = JSON.parse(b.body) as { kind: string; apiVersion: string; items: AuditEvent[] };
        assert.equal(list.kind, 'EventList');
        assert.equal(list.apiVersion, 'audit.k8s.io/v1');
        items.push(...list.items);
      }
      assert.deepEqual(
        items.map((e) => e.auditID),
        events.map((e) => e.auditID),
      );
      const denied = items.find((e) => e.chaperone.decision.action === 'deny');
      assert.equal(denied?.annotations?.['authorization.k8s.io/decision'], 'forbid');
      assert.ok(items.every((e) => typeof e.stageTimestamp === 'string'));
      // A restarted forwarder resumes from the persisted cursor: nothing is sent again.
      const again = new Forwarder({
        store,
        sink: falcoSink({ url: `${r.url}/k8s-audit` }),
        logger: memoryLogger(logs),
        metrics,
      });
      assert.equal(await again.runOnce(), 'idle');
      assert.equal(bodies.length, 3);
    } finally {
      r.server.close();
    }
  });

  it('retries a failing destination with back-off until it takes the events (at least once)', async () => {
    let calls = 0;
    const got: string[] = [];
    const r = await receiver((req, body, res) => {
      calls++;
      if (calls <= 3) {
        res.writeHead(503, { 'retry-after': '0' }).end('ingester not ready');
        return;
      }
      assert.equal(req.url, '/loki/api/v1/push');
      assert.equal(req.headers['x-scope-orgid'], 'security');
      for (const e of checkLokiPush(body)) got.push((JSON.parse(e.line) as AuditEvent).auditID);
      res.writeHead(204).end();
    });
    try {
      const f = new Forwarder({
        store,
        sink: lokiSink({ url: r.url, tenant: 'security' }),
        logger: memoryLogger(logs),
        metrics,
        initialBackoffMs: 1,
        maxBackoffMs: 5,
      });
      await drain(f);
      assert.ok(calls > 3);
      assert.deepEqual([...new Set(got)].sort(), events.map((e) => e.auditID).sort());
      const errors = await registry.getSingleMetricAsString('chaperone_collector_forwarder_errors_total');
      assert.match(errors, /forwarder="loki"[^}]*\} 3/);
    } finally {
      r.server.close();
    }
  });

  it('labels Loki streams with bounded labels and stamps entries with the request time', async () => {
    const entries: { labels: Record<string, string>; ts: string; line: string }[] = [];
    const r = await receiver((_req, body, res) => {
      entries.push(...checkLokiPush(body));
      res.writeHead(204).end();
    });
    try {
      await drain(
        new Forwarder({ store, sink: lokiSink({ url: `${r.url}/` }), logger: memoryLogger(logs), metrics }),
      );
      assert.equal(entries.length, events.length);
      const labelSets = new Set(entries.map((e) => JSON.stringify(e.labels)));
      assert.deepEqual(
        [...labelSets].map((l) => JSON.parse(l)).sort((a, b) => a.action.localeCompare(b.action)),
        [
          { source: 'chaperone', namespace: 'agents', protocol: 'kubernetes', action: 'allow' },
          { source: 'chaperone', namespace: 'agents', protocol: 'kubernetes', action: 'deny' },
        ],
      );
      const first = entries.find((e) => (JSON.parse(e.line) as AuditEvent).auditID === events[0]?.auditID);
      const t = Date.parse(events[0]?.requestReceivedTimestamp as string);
      assert.equal(first?.ts.slice(0, 13), String(t));
      // The store keeps (and forwards) each event's canonical JSON.
      assert.equal(first?.line, canonicalJson(events[0]));
    } finally {
      r.server.close();
    }
  });

  it('splits bodies the destination finds too large, and drops only an event it refuses for good', async () => {
    const poison = events[7]?.auditID as string;
    const delivered: string[] = [];
    const r = await receiver((_req, body, res) => {
      const list = JSON.parse(body) as { items: AuditEvent[] };
      if (list.items.length > 4) {
        res.writeHead(413).end('request entity too large');
        return;
      }
      if (list.items.some((e) => e.auditID === poison)) {
        res.writeHead(400).end('event rejected');
        return;
      }
      delivered.push(...list.items.map((e) => e.auditID));
      res.writeHead(200).end();
    });
    try {
      await drain(
        new Forwarder({
          store,
          sink: falcoSink({ url: r.url }),
          logger: memoryLogger(logs),
          metrics,
          batchSize: 25,
        }),
      );
      assert.deepEqual(
        delivered,
        events.map((e) => e.auditID).filter((id) => id !== poison),
      );
      const dropped = await registry.getSingleMetricAsString(
        'chaperone_collector_forwarder_dropped_events_total',
      );
      assert.match(dropped, /forwarder="falco"[^}]*\} 1/);
    } finally {
      r.server.close();
    }
  });

  it('stops cleanly while a destination is down, without moving the cursor', async () => {
    let attempts = 0;
    const r = await receiver((_req, _body, res) => {
      attempts++;
      res.writeHead(502).end();
    });
    try {
      const f = new Forwarder({
        store,
        sink: falcoSink({ url: r.url }),
        logger: memoryLogger(logs),
        metrics,
        pollMs: 10,
        initialBackoffMs: 5,
        maxBackoffMs: 10,
      });
      f.start();
      while (attempts < 3) await new Promise((res) => setTimeout(res, 5));
      await f.stop();
      assert.equal(await store.getForwardCursor('falco'), undefined);
      assert.equal((await store.backlog(undefined)).events, events.length);
    } finally {
      r.server.close();
    }
  });

  it('fills in the authorization annotations Falco reads when the sidecar left them out', () => {
    const { annotations: _none, ...bare } = events[4] as AuditEvent;
    const out = JSON.parse(falcoEvent(JSON.stringify(bare))) as AuditEvent;
    assert.equal(out.annotations?.['authorization.k8s.io/decision'], 'forbid');
    assert.match(out.annotations?.['authorization.k8s.io/reason'] ?? '', /rule no-secrets/);
    const allowed = JSON.parse(
      falcoEvent(JSON.stringify({ ...bare, chaperone: (events[0] as AuditEvent).chaperone })),
    ) as AuditEvent;
    assert.equal(allowed.annotations?.['authorization.k8s.io/decision'], 'allow');
    const kept = JSON.stringify(events[4]);
    assert.equal(falcoEvent(kept), kept, 'events that carry them pass unchanged');
  });

  it('chunks events by size, keeping an oversized one alone', () => {
    assert.deepEqual(chunksBySize(['aaaa', 'bb', 'cc', 'dddddddddd', 'e'], 8), [
      ['aaaa', 'bb'],
      ['cc'],
      ['dddddddddd'],
      ['e'],
    ]);
  });
});
