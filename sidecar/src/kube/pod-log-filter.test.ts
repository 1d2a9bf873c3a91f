// Pod logs through the pipeline against a stand-in API server: a followed
// log arrives piece by piece as the server writes it (never held for the
// end), a secret split across the server's writes is masked, an error answer
// passes as it came, and the request has one event. Real kubectl: e2e's
// sidecar-portforward.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import { readSpoolDir } from '../audit/spool.ts';
import { startTestPipeline } from './test-pipeline.ts';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsb2ctY2FuYXJ5In0.c2lnbmF0dXJlLW9mLXRoZS1jYW5hcnk';
const DB_PASSWORD = 'Opal-canary-7731';

/** A policy whose exec mask rule names `secret`. */
const maskRulePolicy = (secret: string) => `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: t }
spec:
  defaultAction: allow
  rules:
    - name: mask-db
      match: { protocols: [exec], exec: { argv0: [psql] } }
      action: mask
      mask: { secrets: [${secret}] }
`;

describe('pod logs through the pipeline', () => {
  const ca = createCA({ commonName: 'test' });
  const leaf = issueCertificate({ ca, commonName: 'api', ipAddresses: ['127.0.0.1'] });
  let dir: string;
  let upstream: ReturnType<typeof createServer>;
  let upstreamUrl = '';
  /** The followed log's response, for the test to write to. */
  let follow: ServerResponse | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pod-logs-'));
    writeFileSync(join(dir, 'token'), 'real-token');
    writeFileSync(
      join(dir, 'policy.yaml'),
      'apiVersion: chaperone.dev/v1alpha1\nkind: GuardrailPolicy\nmetadata: { name: t }\nspec: { defaultAction: allow }\n',
    );
    upstream = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
      const url = new URL(req.url ?? '/', 'https://x');
      if (url.pathname === '/api/v1/namespaces/a/secrets/db-creds') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ kind: 'Secret', data: { password: Buffer.from(DB_PASSWORD).toString('base64') } }),
        );
        return;
      }
      if (url.pathname === '/api/v1/namespaces/a/secrets/locked') {
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end('{"kind":"Status","status":"Failure","code":403}');
        return;
      }
      if (url.pathname.endsWith('/pods/db/log')) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`connecting with password ${DB_PASSWORD}\n`);
        return;
      }
      if (url.pathname.endsWith('/pods/gone/log')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"kind":"Status","status":"Failure","message":"pods \\"gone\\" not found","code":404}');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      if (url.searchParams.get('follow') === 'true') {
        // As the API server does for a followed log: the head now, the lines as they come.
        res.flushHeaders();
        follow = res;
      } else res.end(`plain line\ntoken ${JWT} end\n`);
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamUrl = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  });
  after(() => {
    upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('masks secrets in a log, and passes an error answer as it came', async () => {
    const sc = await startTestPipeline({ dir, upstreamUrl, ca: ca.cert });
    try {
      const res = await fetch(`${sc.base}/api/v1/namespaces/a/pods/p/log?container=main`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'plain line\ntoken [masked:jwt] end\n');
      const gone = await fetch(`${sc.base}/api/v1/namespaces/a/pods/gone/log`);
      assert.equal(gone.status, 404);
      assert.match(await gone.text(), /pods \\"gone\\" not found/);
      const events = readSpoolDir(sc.spoolDir).filter((e) => e.objectRef?.subresource === 'log');
      assert.deepEqual(
        events.map((e) => [e.verb, e.objectRef?.name, e.responseStatus?.code]),
        [
          ['get', 'p', 200],
          ['get', 'gone', 404],
        ],
      );
    } finally {
      await sc.close();
    }
  });

  // Fails if pod logs get the detectors only (pipeline.ts without maskedLogs): the password shows; or if a
  // Secret that cannot be read lets the log through unmasked.
  it('masks the values of the Secrets exec mask rules name; refuses the log when one cannot be read', async () => {
    for (const [secret, want] of [
      ['db-creds', { status: 200, body: /^connecting with password \[masked:secret\]\n$/ }],
      [
        'locked',
        {
          status: 503,
          body: /Secret a\/locked, whose values are masked in pod logs, and it could not be read \(HTTP 403\)/,
        },
      ],
    ] as const) {
      const d = mkdtempSync(join(tmpdir(), 'pod-logs-secrets-'));
      writeFileSync(join(d, 'token'), 'real-token');
      writeFileSync(join(d, 'policy.yaml'), maskRulePolicy(secret));
      const sc = await startTestPipeline({ dir: d, upstreamUrl, ca: ca.cert });
      try {
        const res = await fetch(`${sc.base}/api/v1/namespaces/a/pods/db/log?container=main`);
        const body = await res.text();
        assert.equal(res.status, want.status, body);
        assert.match(body, want.body);
        assert.ok(!body.includes(DB_PASSWORD));
      } finally {
        await sc.close();
        rmSync(d, { recursive: true, force: true });
      }
    }
  });

  // Fails if the log is held until it ends (the reads below would wait for ever), or if a value
  // split across the server's writes escapes the detectors.
  it('streams a followed log as it is written, a secret split across writes masked', {
    timeout: 60_000,
  }, async () => {
    const sc = await startTestPipeline({ dir, upstreamUrl, ca: ca.cert });
    try {
      const res = await fetch(`${sc.base}/api/v1/namespaces/a/pods/p/log?follow=true`);
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let text = '';
      const readUntil = async (want: string) => {
        while (!text.includes(want)) {
          const { value, done } = await reader.read();
          if (done)
            throw new Error(`the log ended before ${JSON.stringify(want)}; got ${JSON.stringify(text)}`);
          text += Buffer.from(value).toString('utf8');
        }
      };
      // The upstream sees the request when it sees it (a loaded machine can take seconds): wait for it.
      while (!follow) await new Promise((r) => setTimeout(r, 10));
      follow?.write('first line\n');
      await readUntil('first line\n');
      follow?.write(`then ${JWT.slice(0, 20)}`);
      follow?.write(`${JWT.slice(20)} done\n`);
      await readUntil('done\n');
      assert.equal(text, 'first line\nthen [masked:jwt] done\n');
      follow?.end('last\n');
      await readUntil('last\n');
    } finally {
      await sc.close();
    }
  });
});
