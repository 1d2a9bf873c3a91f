// The request pipeline against a stand-in upstream (an in-process HTTPS
// server playing the API server), to stage failures a real API server won't
// produce on demand: unreachable, protobuf answers, slow streams split at odd
// places, a full spool. The real API server is exercised in e2e/.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { testEvent } from '@chaperone/shared/testing';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import { readSpoolDir } from '../audit/spool.ts';
import { MASKED_BASE64 } from './mask.ts';
import { startTestPipeline } from './test-pipeline.ts';

const CANARY = Buffer.from('pipeline-canary').toString('base64');
const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: t }
spec:
  defaultAction: allow
  rules:
    - { name: mask-secrets, match: { resources: [secrets] }, action: mask }
`;

type Route = (req: IncomingMessage, res: ServerResponse) => void;

describe('kube pipeline', () => {
  const ca = createCA({ commonName: 'test' });
  const leaf = issueCertificate({ ca, commonName: 'api', ipAddresses: ['127.0.0.1'] });
  let dir: string;
  let upstreamServer: ReturnType<typeof createServer>;
  let route: Route = (_req, res) => res.end('{}');
  const seenAuth: string[] = [];
  let upstreamUrl = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pipeline-'));
    writeFileSync(join(dir, 'token'), 'real-token');
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    upstreamServer = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
      seenAuth.push(String(req.headers.authorization));
      route(req, res);
    });
    await new Promise<void>((r) => upstreamServer.listen(0, '127.0.0.1', r));
    upstreamUrl = `https://127.0.0.1:${(upstreamServer.address() as AddressInfo).port}`;
  });
  after(() => {
    upstreamServer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const sidecar = (opts: { url?: string; spoolMaxBytes?: number; failOpen?: boolean } = {}) =>
    startTestPipeline({
      dir,
      upstreamUrl: opts.url ?? upstreamUrl,
      ca: ca.cert,
      ...(opts.spoolMaxBytes !== undefined ? { spool: { maxBytes: opts.spoolMaxBytes } } : {}),
      ...(opts.failOpen !== undefined ? { failOpen: opts.failOpen } : {}),
    });

  it('an exec that is not a WebSocket session is refused, recorded as a denial by its built-in rule, though the policy allows everything', async () => {
    let reached = false;
    route = (_req, res) => {
      reached = true;
      res.end('{}');
    };
    const sc = await sidecar();
    try {
      const res = await fetch(`${sc.base}/api/v1/namespaces/a/pods/p/exec?command=ls&container=app`);
      assert.equal(res.status, 400);
      assert.match(((await res.json()) as { message: string }).message, /must be a WebSocket upgrade/);
      await new Promise((r) => setTimeout(r, 20));
      const [event] = readSpoolDir(sc.spoolDir);
      // Was recorded as the policy's allow (and not counted as blocked) before the refusal set its decision.
      assert.equal(event?.chaperone.decision.action, 'deny');
      assert.equal(event?.chaperone.decision.rule, 'chaperone-exec-needs-websocket');
      assert.equal(reached, false);
    } finally {
      await sc.close();
    }
  });

  it('an unreachable API server becomes a 503 Status, recorded', async () => {
    const sc = await sidecar({ url: 'https://127.0.0.1:1' });
    try {
      const res = await fetch(`${sc.base}/api/v1/namespaces/a/pods`);
      const body = (await res.json()) as { kind: string; reason: string; message: string };
      assert.equal(res.status, 503);
      assert.equal(body.kind, 'Status');
      assert.equal(body.reason, 'ServiceUnavailable');
      assert.match(body.message, /API server at https:\/\/127\.0\.0\.1:1 is unreachable/);
      await new Promise((r) => setTimeout(r, 20));
      const [event] = readSpoolDir(sc.spoolDir);
      assert.equal(event?.responseStatus?.code, 503);
    } finally {
      await sc.close();
    }
  });

  it("sends the real token upstream, never the agent's, and the Audit-ID", async () => {
    let auditId = '';
    route = (req, res) => {
      auditId = String(req.headers['audit-id']);
      res.setHeader('content-type', 'application/json');
      res.end('{"kind":"PodList","items":[]}');
    };
    const sc = await sidecar();
    try {
      const res = await fetch(`${sc.base}/api/v1/namespaces/a/pods`, {
        headers: { authorization: 'Bearer placeholder' },
      });
      assert.equal(res.status, 200);
      assert.equal(seenAuth.at(-1), 'Bearer real-token');
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(readSpoolDir(sc.spoolDir)[0]?.auditID, auditId);
    } finally {
      await sc.close();
    }
  });

  it('withholds a masked response it cannot read (protobuf) instead of passing it through', async () => {
    route = (_req, res) => {
      res.setHeader('content-type', 'application/vnd.kubernetes.protobuf');
      res.end(Buffer.from(`k8s\0${CANARY}`));
    };
    const sc = await sidecar();
    try {
      const res = await fetch(`${sc.base}/api/v1/namespaces/a/secrets/x`);
      const text = await res.text();
      assert.equal(res.status, 502);
      assert.equal(text.includes(CANARY), false);
      assert.match(text, /cannot be masked; the response was withheld/);
    } finally {
      await sc.close();
    }
  });

  it('asks for JSON on masked requests and refuses clients that accept only protobuf', async () => {
    let accept = '';
    route = (req, res) => {
      accept = String(req.headers.accept);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ kind: 'Secret', data: { p: CANARY } }));
    };
    const sc = await sidecar();
    try {
      const ok = await fetch(`${sc.base}/api/v1/namespaces/a/secrets/x`, {
        headers: { accept: 'application/vnd.kubernetes.protobuf, application/json' },
      });
      assert.equal(accept, 'application/json');
      assert.deepEqual(((await ok.json()) as { data: unknown }).data, { p: MASKED_BASE64 });
      const only = await fetch(`${sc.base}/api/v1/namespaces/a/secrets/x`, {
        headers: { accept: 'application/vnd.kubernetes.protobuf' },
      });
      assert.equal(only.status, 406);
    } finally {
      await sc.close();
    }
  });

  it('masks a watch stream whose events arrive split at odd places, and ends it rather than leak on garbage', async () => {
    const events = [1, 2, 3].map((i) =>
      JSON.stringify({
        type: 'ADDED',
        object: { kind: 'Secret', metadata: { name: `s${i}` }, data: { p: CANARY } },
      }),
    );
    const wire = Buffer.from(
      `${events.join('\n')}\n{"type":"ADDED","object":{"data":{"p":"${CANARY}"}} garbage\n`,
    );
    route = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      let i = 0;
      const tick = setInterval(() => {
        res.write(wire.subarray(i, i + 37));
        i += 37;
        if (i >= wire.length) {
          clearInterval(tick);
          res.end();
        }
      }, 2);
    };
    const sc = await sidecar();
    try {
      const res = await fetch(`${sc.base}/api/v1/namespaces/a/secrets?watch=true`);
      let text = '';
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let cut = false;
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          text += Buffer.from(value).toString('utf8');
        }
      } catch {
        cut = true; // the stream is cut when the garbage arrives
      }
      assert.equal(cut, true, 'the stream must not end normally after unreadable data');
      assert.equal(text.includes(CANARY), false);
      for (const i of [1, 2, 3]) assert.match(text, new RegExp(`"name":"s${i}"`));
    } finally {
      await sc.close();
    }
  });

  for (const [what, path] of [
    ['a watch', '/api/v1/namespaces/a/configmaps?watch=1'],
    ['a masked watch', '/api/v1/namespaces/a/secrets?watch=true'],
    ['followed logs (follow=yes, as the API server reads it)', '/api/v1/namespaces/a/pods/p/log?follow=yes'],
  ] as const) {
    it(`answers the head of ${what} before its first event arrives`, async () => {
      let finish: (() => void) | undefined;
      route = (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        finish = () => res.end();
      };
      const sc = await sidecar();
      try {
        // The upstream sends no event for longer than the sidecar's 2 s request timeout: a stream
        // has none, and the agent has its head (kubectl reports nothing before it).
        const res = await fetch(`${sc.base}${path}`, { signal: AbortSignal.timeout(4000) });
        assert.equal(res.status, 200);
        await new Promise((r) => setTimeout(r, 2500));
        finish?.();
        assert.equal(await res.text(), '');
      } finally {
        await sc.close();
      }
    });
  }

  it('fails closed when the spool is full, and serves when configured to fail open', async () => {
    route = (_req, res) => res.end('{}');
    for (const failOpen of [false, true]) {
      const sc = await sidecar({ spoolMaxBytes: 64 * 1024, failOpen });
      try {
        const filler = { ...testEvent(0), requestURI: `/${'x'.repeat(70_000)}` };
        sc.spool.append(filler);
        const res = await fetch(`${sc.base}/api/v1/namespaces/a/pods`);
        const body = (await res.json()) as { message?: string };
        if (failOpen) assert.equal(res.status, 200);
        else {
          assert.equal(res.status, 503);
          assert.match(body.message ?? '', /audit spool is full/);
          assert.equal(res.headers.get('retry-after'), '5');
        }
      } finally {
        await sc.close();
      }
    }
  });

  it('refuses bodies over the limit with 413', async () => {
    const sc = await sidecar();
    try {
      const res = await fetch(`${sc.base}/api/v1/namespaces/a/pods`, {
        method: 'POST',
        body: 'x'.repeat(4096),
      });
      assert.equal(res.status, 413);
    } finally {
      await sc.close();
    }
  });
});
