// The assembled collector in-process: TLS, a public-issuer JWKS URL, the
// embedded store, a Falco forwarder and metrics, wired by startCollector
// exactly as `chaperone collector` wires them.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AuditEvent, createRegistry, parseConfig } from '@chaperone/shared';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import { createApiClient } from './cli/api-client.ts';
import { type RunningCollector, startCollector } from './collector.ts';
import { COLLECTOR_SCHEMA } from './config.ts';
import { streamEvents } from './testing/ingest-client.ts';
import { makeChain, TEST_SOURCE as SOURCE } from './testing/test-events.ts';
import { memoryLogger, TEST_ISSUER, TestIssuer } from './testing/test-harness.ts';

const QUERY_TOKEN = 'collector-test-query-token-01234';

function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  return new Promise((r) =>
    server.listen(0, '127.0.0.1', () =>
      r({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }),
    ),
  );
}

describe('collector (assembled)', () => {
  let dir: string;
  let issuer: TestIssuer;
  let jwks: Server;
  let falco: Server;
  const falcoItems: AuditEvent[] = [];
  let collector: RunningCollector;
  let caPem: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-collector-tls-'));
    issuer = await TestIssuer.create();
    const j = await listen((_q, res) => res.end(JSON.stringify({ keys: [issuer.jwk] })));
    jwks = j.server;
    const f = await listen((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        falcoItems.push(...(JSON.parse(Buffer.concat(chunks).toString()) as { items: AuditEvent[] }).items);
        res.end();
      });
    });
    falco = f.server;
    const ca = createCA({ commonName: 'test collector CA' });
    caPem = ca.cert;
    const leaf = issueCertificate({
      ca,
      commonName: 'collector',
      ipAddresses: ['127.0.0.1'],
      dnsNames: ['localhost'],
    });
    writeFileSync(join(dir, 'tls.crt'), leaf.cert);
    writeFileSync(join(dir, 'tls.key'), leaf.key, { mode: 0o600 });
    writeFileSync(join(dir, 'ca.crt'), ca.cert);
    writeFileSync(join(dir, 'query-token'), QUERY_TOKEN, { mode: 0o600 });
    const config = parseConfig(COLLECTOR_SCHEMA, {
      flags: {
        listenHost: '127.0.0.1',
        listenPort: '0',
        queryListenHost: '127.0.0.1',
        queryListenPort: '0',
        metricsHost: '127.0.0.1',
        metricsPort: '0',
        tlsCertFile: join(dir, 'tls.crt'),
        tlsKeyFile: join(dir, 'tls.key'),
        dataDir: join(dir, 'data'),
        jwksUrl: `${j.url}/keys`,
        tokenIssuer: TEST_ISSUER,
        queryTokenFile: join(dir, 'query-token'),
        falcoUrl: `${f.url}/k8s-audit`,
        retention: '30d',
      },
    });
    collector = await startCollector(config, {
      logger: memoryLogger([]),
      registry: createRegistry({ component: 'collector', defaultMetrics: false }),
    });
  });

  after(async () => {
    await collector?.close();
    jwks?.close();
    falco?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves ingest and the query API over TLS, and forwards to Falco', async () => {
    assert.match(collector.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const events = makeChain(SOURCE, 60, {
      spec: (i) => (i % 4 === 0 ? { action: 'deny', rule: 'r1' } : {}),
    });
    const token = await issuer.token(SOURCE);
    const r = await streamEvents({
      url: collector.url,
      token: () => token,
      sidecarId: SOURCE.sidecarId,
      events,
      ca: caPem,
      batchSize: 25,
      deadlineMs: 30_000,
    });
    assert.equal(r.head.seq, 60);
    const api = createApiClient({
      collectorUrl: collector.queryUrl,
      token: QUERY_TOKEN,
      caFile: join(dir, 'ca.crt'),
    });
    const page = await api.get<{ items: AuditEvent[] }>(
      '/v1/events',
      new URLSearchParams({ decision: 'deny', limit: '100' }),
    );
    assert.equal(page.items.length, 15);
    // The ingest port (the one the agents' network policy opens) does not serve the query API.
    assert.notEqual(collector.queryUrl, collector.url);
    const onIngest = await createApiClient({
      collectorUrl: collector.url,
      token: QUERY_TOKEN,
      caFile: join(dir, 'ca.crt'),
    }).raw('/v1/events');
    assert.equal(onIngest.status, 404);
    assert.match(onIngest.body, /not served on the ingest port.*--query-listen-port/);
    const chains = await api.get<{ items: { sidecarId: string; head: { seq: number } }[] }>('/v1/chains');
    assert.deepEqual(
      chains.items.map((c) => [c.sidecarId, c.head.seq]),
      [[SOURCE.sidecarId, 60]],
    );
    for (let i = 0; i < 200 && falcoItems.length < 60; i++) await new Promise((res) => setTimeout(res, 25));
    assert.deepEqual(
      falcoItems.map((e) => e.chaperone.seq),
      events.map((e) => e.chaperone.seq),
    );
    const metrics = await (await fetch(collector.metricsUrl)).text();
    assert.match(
      metrics,
      /chaperone_collector_events_total\{protocol="kubernetes",action="deny",component="collector"\} 15/,
    );
    assert.match(
      metrics,
      /chaperone_collector_blocked_events_total\{namespace="agents",rule="r1",component="collector"\} 15/,
    );
    assert.match(metrics, /chaperone_collector_ingest_latency_seconds_count\{component="collector"\} \d+/);
    assert.doesNotMatch(metrics, /agent-0/, 'no pod names in metric labels');
  });
});
