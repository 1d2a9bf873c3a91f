// The assembled collector in-process: TLS, a public-issuer JWKS URL, the
// embedded store, a Falco forwarder and metrics, wired by startCollector
// exactly as `chaperone collector` wires them.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AuditEvent, ConfigError, createRegistry, parseConfig } from '@chaperone/shared';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import { createApiClient } from './cli/api-client.ts';
import { type RunningCollector, startCollector } from './collector.ts';
import { COLLECTOR_SCHEMA } from './config.ts';
import { connectIngest, streamEvents } from './testing/ingest-client.ts';
import { makeChain, TEST_SOURCE as SOURCE } from './testing/test-events.ts';
import { LOOPBACK_LISTENERS, memoryLogger, TEST_ISSUER, TestIssuer } from './testing/test-harness.ts';

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
        ...LOOPBACK_LISTENERS,
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
      /chaperone_collector_blocked_events_total\{namespace="agents",rule="r1",protocol="kubernetes",component="collector"\} 15/,
    );
    assert.match(metrics, /chaperone_collector_ingest_duration_seconds_count\{component="collector"\} \d+/);
    assert.doesNotMatch(metrics, /agent-0/, 'no pod names in metric labels');
  });
});

// The collector's own way to the API server (--kube-api-server, --kube-ca-file,
// --kube-token-file, as in a pod). A local HTTPS stand-in plays the API server so the
// test can see what each request carried; the real API server answers the same requests
// in e2e/src/collector-auth.test.ts.
describe('collector and the API server', () => {
  let dir: string;
  let issuer: TestIssuer;
  let apiServer: ReturnType<typeof createHttpsServer>;
  let apiServerUrl: string;
  const seen: { path: string; authorization?: string; accept?: string; userAgent?: string }[] = [];

  const configFor = (flags: Record<string, string>) =>
    parseConfig(COLLECTOR_SCHEMA, {
      flags: {
        ...LOOPBACK_LISTENERS,
        dataDir: mkdtempSync(join(dir, 'data-')),
        kubeApiServer: apiServerUrl,
        kubeCaFile: join(dir, 'kube-ca.crt'),
        tokenIssuer: TEST_ISSUER,
        queryToken: QUERY_TOKEN,
        ...flags,
      },
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-collector-kube-'));
    issuer = await TestIssuer.create();
    const ca = createCA({ commonName: 'test cluster CA' });
    const serving = issueCertificate({ ca, commonName: 'kube-apiserver', ipAddresses: ['127.0.0.1'] });
    writeFileSync(join(dir, 'kube-ca.crt'), ca.cert);
    writeFileSync(join(dir, 'kube-token'), 'collector-sa-token\n', { mode: 0o600 });
    const objects: Record<string, unknown> = {
      '/api/v1/namespaces/agents': { metadata: { uid: 'ns', labels: { 'chaperone.dev/inject': 'enabled' } } },
      '/api/v1/namespaces/agents/pods/agent-0': {
        metadata: { uid: SOURCE.podUID, labels: { 'chaperone.dev/injected': 'true' } },
      },
    };
    apiServer = createHttpsServer({ cert: serving.cert, key: serving.key }, (req: IncomingMessage, res) => {
      const path = req.url ?? '';
      seen.push({
        path,
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
        ...(req.headers.accept ? { accept: req.headers.accept } : {}),
        ...(req.headers['user-agent'] ? { userAgent: req.headers['user-agent'] } : {}),
      });
      // As the API server: the key set only for a client that accepts its media type.
      const body =
        path === '/openid/v1/jwks' && req.headers.accept?.includes('application/jwk-set+json')
          ? { keys: [issuer.jwk] }
          : objects[path];
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(body ?? {}));
    });
    await new Promise<void>((r) => apiServer.listen(0, '127.0.0.1', r));
    apiServerUrl = `https://127.0.0.1:${(apiServer.address() as AddressInfo).port}`;
  });

  after(() => {
    apiServer?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  // Fails when the collector's API client is not closed on shutdown (drop its cleanup step in
  // startCollector): its keep-alive connection to the API server stays open.
  it('reads the issuer keys and the pod with its token file, and closes its connections on shutdown', async () => {
    const collector = await startCollector(configFor({ kubeTokenFile: join(dir, 'kube-token') }), {
      logger: memoryLogger([]),
      registry: createRegistry({ component: 'collector', defaultMetrics: false }),
    });
    try {
      const conn = await connectIngest({ url: collector.url, token: await issuer.token(SOURCE) });
      assert.ok(conn.ok, conn.ok ? '' : conn.body);
      conn.ws.close();
    } finally {
      await collector.close();
    }
    assert.deepEqual(seen.map((r) => r.path).sort(), [
      '/api/v1/namespaces/agents',
      '/api/v1/namespaces/agents/pods/agent-0',
      '/openid/v1/jwks',
    ]);
    for (const r of seen) {
      assert.equal(r.authorization, 'Bearer collector-sa-token', r.path);
      assert.equal(r.userAgent, 'chaperone-collector', r.path);
    }
    const open = () => new Promise<number>((r) => apiServer.getConnections((_e, n) => r(n)));
    for (let i = 0; i < 40 && (await open()) > 0; i++) await new Promise((r) => setTimeout(r, 25));
    assert.equal(await open(), 0, 'connections to the API server left open after close');
  });

  // Fails when the token file is not read at start (drop the check in kubeClient): the
  // collector starts, and every request would go without a token and end in a 401.
  it('refuses to start when its API server token file cannot be read', async () => {
    const missing = join(dir, 'no-such-token');
    await assert.rejects(
      startCollector(configFor({ kubeTokenFile: missing }), {
        logger: memoryLogger([]),
        registry: createRegistry({ component: 'collector', defaultMetrics: false }),
      }),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(
          err.message,
          new RegExp(
            `^cannot read the collector's API server token \\(--kube-token-file\\) from ${missing}: ENOENT`,
          ),
        );
        return true;
      },
    );
  });
});
