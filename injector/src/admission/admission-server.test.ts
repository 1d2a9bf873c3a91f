import assert from 'node:assert/strict';
import { Agent, request as httpsRaw } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { inspectCertificate } from '@chaperone/shared/tls';
import fc from 'fast-check';
import { custodyViolations } from '../inject/custody-check.ts';
import { applyPatch, type PatchOperation } from '../inject/json-patch.ts';
import type { Pod } from '../k8s-types.ts';
import { httpsRequest, testPki } from '../test-https.ts';
import { TEST_CONFIG } from '../test-support.ts';
import { createAdmissionHandler } from './admission-handler.ts';
import type { AdmissionResponse } from './admission-review.ts';
import { type AdmissionServer, startAdmissionServer } from './admission-server.ts';
import { createValidationHandler } from './validation-handler.ts';

const pki = testPki();

function review(pod: unknown, extra: Record<string, unknown> = {}) {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'b6f2c1e4-0000-4000-8000-000000000001',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'agents',
      operation: 'CREATE',
      object: pod,
      ...extra,
    },
  });
}

const POD: Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'agent', namespace: 'agents' },
  spec: { containers: [{ name: 'agent', image: 'busybox' }] },
};

describe('admission server', () => {
  let srv: AdmissionServer;
  let ready = true;
  before(async () => {
    srv = await startAdmissionServer({
      host: '127.0.0.1',
      port: 0,
      certificate: pki.leaf(),
      path: '/mutate',
      maxRequestBytes: 64 * 1024,
      handle: createAdmissionHandler({ config: () => TEST_CONFIG }),
      routes: {
        '/validate': createValidationHandler({
          settings: () => ({ injection: TEST_CONFIG, exemptions: { users: [], groups: [] } }),
        }),
      },
      ready: () => ready,
    });
  });
  after(() => srv.close(1000));

  const post = (
    body: string | Buffer,
    headers: Record<string, string> = { 'content-type': 'application/json' },
    agent?: Agent,
  ) => httpsRequest(srv.url, { ca: pki.ca.cert, method: 'POST', body, headers, agent });

  it('answers a pod CREATE with a JSON patch that injects the sidecar', async () => {
    const r = await post(review(POD));
    assert.equal(r.status, 200, r.body);
    const out = JSON.parse(r.body) as { apiVersion: string; kind: string; response: AdmissionResponse };
    assert.equal(out.apiVersion, 'admission.k8s.io/v1');
    assert.equal(out.kind, 'AdmissionReview');
    assert.equal(out.response.uid, 'b6f2c1e4-0000-4000-8000-000000000001');
    assert.equal(out.response.allowed, true);
    assert.equal(out.response.patchType, 'JSONPatch');
    const patch = JSON.parse(Buffer.from(out.response.patch ?? '', 'base64').toString()) as PatchOperation[];
    const injected = applyPatch(POD, patch);
    assert.equal(injected.spec.containers[0]?.name, 'chaperone-sidecar');
    assert.deepEqual(custodyViolations(injected), []);
  });

  it('denies a pod with an invalid override, naming the annotation', async () => {
    const pod = structuredClone(POD);
    pod.metadata = { ...pod.metadata, annotations: { 'chaperone.dev/metrics-port': 'ninety' } };
    const r = await post(review(pod));
    assert.equal(r.status, 200);
    const out = JSON.parse(r.body) as { response: AdmissionResponse };
    assert.equal(out.response.allowed, false);
    assert.equal(out.response.status?.code, 400);
    assert.match(
      out.response.status?.message ?? '',
      /chaperone\.dev\/metrics-port: "ninety" is not a port number/,
    );
  });

  it('lets other kinds and operations through untouched', async () => {
    const r = await post(review(POD, { operation: 'UPDATE', oldObject: POD }));
    const out = JSON.parse(r.body) as { response: AdmissionResponse };
    assert.deepEqual(out.response, { uid: 'b6f2c1e4-0000-4000-8000-000000000001', allowed: true });
  });

  it('answers malformed requests with 400 and a message', async () => {
    const cases: [string | Buffer, RegExp, Record<string, string>?][] = [
      ['{not json', /malformed AdmissionReview: the body is not valid JSON/],
      ['[]', /malformed AdmissionReview: must be an object/],
      [
        JSON.stringify({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1beta1', request: {} }),
        /apiVersion: must be "admission.k8s.io\/v1"/,
      ],
      [
        JSON.stringify({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1' }),
        /\/request: must be an object/,
      ],
      [
        review(POD).replace('"uid":"b6f2c1e4-0000-4000-8000-000000000001",', ''),
        /\/request\/uid: must be a string/,
      ],
      [review(null), /\/request\/object: must be an object for a CREATE/],
      [review(POD), /content-type must be application\/json/, { 'content-type': 'text/plain' }],
    ];
    for (const [body, message, headers] of cases) {
      const r = await post(body, headers);
      assert.equal(r.status, 400, `${String(body).slice(0, 60)} → ${r.status} ${r.body}`);
      assert.match(r.body, message);
    }
  });

  it('answers an oversized AdmissionReview with 400, declared or streamed', async () => {
    const big = review({ ...POD, metadata: { name: 'x', annotations: { pad: 'x'.repeat(100 * 1024) } } });
    const declared = await post(big);
    assert.equal(declared.status, 400);
    assert.match(declared.body, /the AdmissionReview is \d+ bytes; the limit is 65536 bytes/);
    // Without content-length (chunked), the limit is enforced while reading.
    const streamed = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRaw(srv.url, {
        method: 'POST',
        ca: pki.ca.cert,
        agent: false,
        headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      for (let i = 0; i < big.length; i += 8192) req.write(big.slice(i, i + 8192));
      req.end();
    });
    assert.equal(streamed.status, 400);
    assert.match(streamed.body, /the limit is 65536 bytes/);
    // A body declared far beyond the limit is answered at once, without reading it.
    const huge = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRaw(srv.url, {
        method: 'POST',
        ca: pki.ca.cert,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': String(1024 * 1024 * 1024) },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, body });
        });
      });
      req.on('error', reject);
      req.write('{');
    });
    assert.equal(huge.status, 400);
    assert.match(huge.body, /the AdmissionReview is 1073741824 bytes; the limit is 65536 bytes/);
    // The server is still fine.
    assert.equal((await post(review(POD))).status, 200);
  });

  it('never crashes on arbitrary bodies', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)),
          fc.json(),
        ),
        async (body) => {
          const r = await post(body);
          assert.equal(r.status, 400, r.body);
        },
      ),
      { numRuns: 60 },
    );
    assert.equal((await post(review(POD))).status, 200);
  });

  it('answers wrong methods and paths', async () => {
    assert.equal((await httpsRequest(srv.url, { ca: pki.ca.cert })).status, 405);
    const other = await httpsRequest(srv.url.replace('/mutate', '/other'), { ca: pki.ca.cert });
    assert.equal(other.status, 404);
    assert.match(other.body, /POST \/mutate or \/validate/);
    const proto = await httpsRequest(srv.url.replace('/mutate', '/__proto__'), {
      ca: pki.ca.cert,
      method: 'POST',
      body: review(POD),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(proto.status, 404);
  });

  it('serves the validating webhook on its own path: the uninjected pod is denied', async () => {
    const url = srv.url.replace('/mutate', '/validate');
    const r = await httpsRequest(url, {
      ca: pki.ca.cert,
      method: 'POST',
      body: review(POD, { userInfo: { username: 'mallory' } }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(r.status, 200, r.body);
    const out = JSON.parse(r.body) as { response: AdmissionResponse };
    assert.equal(out.response.allowed, false);
    assert.equal(out.response.patch, undefined);
    assert.match(out.response.status?.message ?? '', /the injector did not inject it.*requester: mallory/);
    const bad = await httpsRequest(url, {
      ca: pki.ca.cert,
      method: 'POST',
      body: '{"kind":"AdmissionReview"',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(bad.status, 400);
  });

  it('serves /healthz and /readyz', async () => {
    const base = srv.url.replace('/mutate', '');
    assert.equal((await httpsRequest(`${base}/healthz`, { ca: pki.ca.cert })).status, 200);
    assert.equal((await httpsRequest(`${base}/readyz`, { ca: pki.ca.cert })).status, 200);
    ready = false;
    assert.equal((await httpsRequest(`${base}/readyz`, { ca: pki.ca.cert })).status, 503);
    ready = true;
  });

  it('hot-reloads the certificate without dropping open connections', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: pki.ca.cert });
    try {
      const postPod = (through?: Agent) => post(review(POD), undefined, through);
      const first = await postPod(agent);
      assert.equal(first.status, 200);
      const next = pki.leaf();
      srv.setCertificate(next);
      const nextSerial = inspectCertificate(next.cert).serialNumber.toUpperCase();
      // The open connection keeps working (same socket, old certificate)…
      const again = await postPod(agent);
      assert.equal(again.status, 200);
      assert.equal(again.serial, first.serial);
      // …and new connections get the new certificate.
      const fresh = await postPod();
      assert.equal(fresh.status, 200);
      assert.equal(fresh.serial.toUpperCase().replace(/^0+/, ''), nextSerial.replace(/^0+/, ''));
      assert.notEqual(fresh.serial, first.serial);
    } finally {
      agent.destroy();
    }
  });
});
