// KubeClient against a local HTTPS server (test double: these cases need
// answers a real API server gives only in rare states — 409s, 500s, chosen
// bodies; the e2e suites drive the same client against a real kube-apiserver).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ChaperoneError } from '../errors.ts';
import { KubeApiError } from './api-error.ts';
import { KubeClient } from './client.ts';
import { type CredentialSource, fixedCredentials, type KubeConnection } from './connection.ts';
import { sendJson, startTestApiServer, type TestApiServer } from './test-server.ts';

const servers: TestApiServer[] = [];
const clients: KubeClient[] = [];
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
});

async function serve(...args: Parameters<typeof startTestApiServer>): Promise<TestApiServer> {
  const s = await startTestApiServer(...args);
  servers.push(s);
  return s;
}

function client(conn: Partial<KubeConnection> & { server: string }, userAgent?: string): KubeClient {
  const c = new KubeClient(
    { credentials: fixedCredentials(), source: 'test', ...conn },
    userAgent ? { userAgent } : {},
  );
  clients.push(c);
  return c;
}

describe('KubeClient requests', () => {
  it('sends JSON with the bearer token and reads JSON back', async () => {
    const s = await serve((r, res) => {
      if (r.method === 'GET' && r.path === '/version') return sendJson(res, 200, { major: '1', minor: '20' });
      if (r.method === 'POST') return sendJson(res, 201, { echoed: JSON.parse(r.body) });
      if (r.method === 'PATCH') return sendJson(res, 200, { patched: r.contentType });
      sendJson(res, 404, { kind: 'Status', reason: 'NotFound', code: 404 });
    });
    const c = client(
      { server: s.url, ca: s.ca, credentials: fixedCredentials({ token: 'tok' }) },
      'chaperone-test',
    );
    assert.deepEqual(await c.get('/version'), { major: '1', minor: '20' });
    assert.deepEqual(await c.create('/api/v1/namespaces', { metadata: { name: 'a' } }, { dryRun: 'All' }), {
      echoed: { metadata: { name: 'a' } },
    });
    assert.deepEqual(await c.patch('/api/v1/namespaces/a', { metadata: {} }, 'strategic'), {
      patched: 'application/strategic-merge-patch+json',
    });
    assert.equal(
      await c.get('/api/v1/namespaces/missing'),
      undefined,
      'GET of a missing object is undefined',
    );
    assert.equal(await c.delete('/api/v1/namespaces/missing'), false);
    assert.ok(s.seen.every((r) => r.authorization === 'Bearer tok' && r.userAgent === 'chaperone-test'));
    assert.equal(s.seen[1]?.query.get('dryRun'), 'All');
    assert.equal(s.seen[1]?.contentType, 'application/json');
  });

  it('keeps a path prefix of the server URL (API servers behind a proxy path)', async () => {
    const s = await serve((r, res) => sendJson(res, 200, { path: r.path }));
    // Would fail if the request path replaced the server's path instead of going below it.
    assert.deepEqual(await client({ server: `${s.url}/k8s/clusters/c-1`, ca: s.ca }).get('/version'), {
      path: '/k8s/clusters/c-1/version',
    });
  });

  it('turns error answers into KubeApiError with the Status, and keeps non-JSON bodies as text', async () => {
    const s = await serve((r, res) => {
      if (r.path.endsWith('/conflict'))
        return sendJson(res, 409, {
          kind: 'Status',
          reason: 'AlreadyExists',
          message: 'namespaces "a" already exists',
          code: 409,
        });
      if (r.path.endsWith('/html')) {
        res.writeHead(502, { 'content-type': 'text/html' });
        return res.end('<html>bad gateway</html>');
      }
      sendJson(res, 403, { kind: 'Status', reason: 'Forbidden', message: 'secrets is forbidden' });
    });
    const c = client({ server: s.url, ca: s.ca });
    await assert.rejects(c.get('/api/v1/secrets'), (err: unknown) => {
      assert.ok(err instanceof KubeApiError && err instanceof ChaperoneError);
      assert.equal(err.status, 403);
      assert.equal(err.code, 'forbidden');
      assert.equal(err.reason, 'Forbidden');
      assert.match(err.message, /^GET \/api\/v1\/secrets: HTTP 403: secrets is forbidden$/);
      return true;
    });
    await assert.rejects(c.create('/x/conflict', {}), (err: unknown) => {
      assert.ok(err instanceof KubeApiError);
      assert.equal(err.code, 'conflict');
      assert.equal(err.kubeStatus?.reason, 'AlreadyExists');
      return true;
    });
    const html = await c.request('GET', '/x/html');
    assert.deepEqual(html, { status: 502, body: '<html>bad gateway</html>' });
    await assert.rejects(
      c.replace('/x/html', {}),
      (err: unknown) => err instanceof KubeApiError && err.code === 'unavailable',
    );
  });

  it('reports an unreachable server and a silent one as errors naming the server', async () => {
    const s = await serve(() => {
      // never answers
    });
    const silent = client({ server: s.url, ca: s.ca });
    await assert.rejects(silent.request('GET', '/version', { timeoutMs: 200 }), (err: unknown) => {
      assert.ok(err instanceof ChaperoneError);
      assert.equal(err.code, 'timeout');
      assert.match(
        err.message,
        new RegExp(`GET /version: no answer from the API server within 200 ms \\(${s.url}\\)`),
      );
      return true;
    });
    const closed = client({ server: 'https://127.0.0.1:1', ca: s.ca });
    await assert.rejects(closed.get('/version'), (err: unknown) => {
      assert.ok(err instanceof ChaperoneError);
      assert.equal(err.code, 'unavailable');
      assert.match(err.message, /GET \/version: .*ECONNREFUSED.*\(https:\/\/127\.0\.0\.1:1\)/);
      return true;
    });
  });

  it('trusts only the given CA, checks the name, and honours tls-server-name', async () => {
    const s = await serve((_r, res) => sendJson(res, 200, {}), { dnsNames: ['api.internal'], ipSan: false });
    // The certificate names api.internal only: reaching it by IP must fail the name check…
    await assert.rejects(
      client({ server: s.url, ca: s.ca }).get('/version'),
      /ERR_TLS_CERT_ALTNAME_INVALID|does not match/,
    );
    // …unless the kubeconfig names the server (tls-server-name).
    assert.deepEqual(
      await client({ server: s.url, ca: s.ca, tlsServerName: 'api.internal' }).get('/version'),
      {},
    );
    // Another CA is not trusted.
    const other = await serve((_r, res) => sendJson(res, 200, {}));
    await assert.rejects(
      client({ server: s.url, ca: other.ca, tlsServerName: 'api.internal' }).get('/version'),
      /certificate/,
    );
    assert.deepEqual(await client({ server: s.url, insecureSkipTlsVerify: true }).get('/version'), {});
  });

  it('authenticates with a client certificate, and uses new connections when the certificate changes', async () => {
    const s = await serve((r, res) => sendJson(res, 200, { user: r.clientName }), { clientAuth: true });
    const alice = s.clientCertificate('alice');
    const bob = s.clientCertificate('bob');
    let current = alice;
    const rotating: CredentialSource = {
      current: () => ({ clientCert: current.cert, clientKey: current.key }),
    };
    const c = client({ server: s.url, ca: s.ca, credentials: rotating });
    assert.deepEqual(await c.get('/whoami'), { user: 'alice' });
    current = bob;
    // Would still say alice if connections made with the old certificate were reused.
    assert.deepEqual(await c.get('/whoami'), { user: 'bob' });
    // Without a certificate the server refuses the TLS handshake.
    await assert.rejects(client({ server: s.url, ca: s.ca }).get('/whoami'), (err: unknown) => {
      assert.ok(err instanceof ChaperoneError);
      assert.equal(err.code, 'unavailable');
      return true;
    });
  });

  it('tells the credential source when the API server refuses its credentials', async () => {
    const s = await serve((r, res) =>
      r.authorization === 'Bearer new'
        ? sendJson(res, 200, {})
        : sendJson(res, 401, { kind: 'Status', reason: 'Unauthorized', code: 401 }),
    );
    let token = 'old';
    let refusals = 0;
    const c = client({
      server: s.url,
      ca: s.ca,
      credentials: {
        current: () => ({ token }),
        refused: () => {
          refusals++;
          token = 'new';
        },
      },
    });
    await assert.rejects(
      c.get('/version'),
      (err: unknown) => err instanceof KubeApiError && err.code === 'unauthenticated',
    );
    assert.equal(refusals, 1, 'a 401 asks the source for fresh credentials');
    assert.deepEqual(await c.get('/version'), {});
  });
});
