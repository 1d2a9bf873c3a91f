// Fail closed when an event cannot be kept: the request pipeline against a
// stand-in upstream (an in-process HTTPS server playing the API server) with a
// spool whose disk writes can be made to fail (ENOSPC), and a collector whose
// lag is staged.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import { readSpoolDir } from '../../audit/spool.ts';
import { startTestPipeline } from '../test-pipeline.ts';

const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: t }
spec:
  defaultAction: allow
  rules: []
`;

interface Status {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

describe('audit: no answer without its event', () => {
  const ca = createCA({ commonName: 'test' });
  const leaf = issueCertificate({ ca, commonName: 'api', ipAddresses: ['127.0.0.1'] });
  let dir: string;
  let upstreamServer: ReturnType<typeof createServer>;
  let upstreamUrl = '';
  /** Audit-IDs of the requests that reached the API server. */
  const reached: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'audit-guard-'));
    writeFileSync(join(dir, 'token'), 'real-token');
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    upstreamServer = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
      reached.push(String(req.headers['audit-id']));
      res.setHeader('content-type', 'application/json');
      res.end('{"kind":"ConfigMapList","apiVersion":"v1","items":[]}');
    });
    await new Promise<void>((r) => upstreamServer.listen(0, '127.0.0.1', r));
    upstreamUrl = `https://127.0.0.1:${(upstreamServer.address() as AddressInfo).port}`;
  });
  after(() => {
    upstreamServer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function sidecar(
    opts: {
      failOpen?: boolean;
      collector?: { maxLagMs: number; behindSince: () => number | undefined };
    } = {},
  ) {
    const disk = { full: false };
    const sc = await startTestPipeline({
      dir,
      upstreamUrl,
      ca: ca.cert,
      spool: {
        write: (fd, buffer, offset, length, position) => {
          if (disk.full) {
            throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          }
          return writeSync(fd, buffer, offset, length, position);
        },
      },
      ...(opts.failOpen !== undefined ? { failOpen: opts.failOpen } : {}),
      ...(opts.collector ? { collector: opts.collector } : {}),
    });
    const get = async (): Promise<{ status: number; body: Status }> => {
      const res = await fetch(`${sc.base}/api/v1/namespaces/a/configmaps`);
      return { status: res.status, body: (await res.json()) as Status };
    };
    return {
      get,
      disk,
      spool: sc.spool,
      spoolDir: sc.spoolDir,
      metricsText: () => sc.registry.metrics(),
      close: sc.close,
    };
  }

  // Breaks without the write-before-answer in guards/audit.ts: with the event written only when the
  // response closes (as before) and its write error logged and dropped, the first request below
  // got its 200 and no event exists for it. Tried: making `admit` return without refusing → this
  // test fails at the first assertion (200 !== 503).
  it('withholds the answer when its event cannot be written, and refuses what follows until a write succeeds', async () => {
    const sc = await sidecar();
    try {
      const ok = await sc.get();
      assert.equal(ok.status, 200);

      sc.disk.full = true;
      const before = reached.length;
      const first = await sc.get();
      assert.equal(first.status, 503);
      assert.equal(first.body.kind, 'Status');
      assert.equal(first.body.reason, 'ServiceUnavailable');
      assert.match(
        first.body.message ?? '',
        /could not be written to the audit spool \(ENOSPC: no space left/,
      );
      assert.match(first.body.message ?? '', /check the sidecar's spool volume/);
      // It reached the API server (its event was due with the answer), but the agent never saw that answer.
      assert.equal(reached.length, before + 1);

      const second = await sc.get();
      assert.equal(second.status, 503);
      assert.equal(reached.length, before + 1, 'nothing more reaches the API server while the spool fails');

      // The disk recovers: the next refusal's own event is written, which reopens the gate.
      sc.disk.full = false;
      const third = await sc.get();
      assert.equal(third.status, 503);
      assert.match(third.body.message ?? '', /the last write to the audit spool failed/);
      assert.equal(reached.length, before + 1);
      const fourth = await sc.get();
      assert.equal(fourth.status, 200);
      assert.equal(reached.length, before + 2);

      // Every request the agent got a 200 for has its event in the spool file.
      const ids = new Set(readSpoolDir(sc.spoolDir).map((e) => e.auditID));
      const served = [reached[before - 1], reached[before + 1]];
      for (const id of served)
        assert.ok(ids.has(id as string), `event ${id} of a served request is in the spool`);
      assert.ok(!ids.has(reached[before] as string), 'the withheld answer has no event: the disk was full');
      assert.match(
        await sc.metricsText(),
        /chaperone_audit_unrecordable_requests_total\{reason="spool_write_failed",outcome="refused"[^}]*\} [1-9]/,
      );
    } finally {
      await sc.close();
    }
  });

  it('serves anyway when configured to fail open, and counts it', async () => {
    const sc = await sidecar({ failOpen: true });
    try {
      sc.disk.full = true;
      assert.equal((await sc.get()).status, 200);
      assert.equal((await sc.get()).status, 200);
      assert.match(
        await sc.metricsText(),
        /chaperone_audit_unrecordable_requests_total\{reason="spool_write_failed",outcome="served"[^}]*\} [1-9]/,
      );
    } finally {
      await sc.close();
    }
  });

  it('refuses once the collector has been behind for longer than the bound, before the API server is reached', async () => {
    let since: number | undefined = Date.now() - 31_000;
    const sc = await sidecar({ collector: { maxLagMs: 30_000, behindSince: () => since } });
    try {
      const before = reached.length;
      const refused = await sc.get();
      assert.equal(refused.status, 503);
      assert.match(
        refused.body.message ?? '',
        /has not acknowledged this pod's events for 31 s \(the limit is 30 s/,
      );
      assert.match(refused.body.message ?? '', /Check that the collector is running and reachable/);
      assert.equal(reached.length, before);
      assert.match(
        await sc.metricsText(),
        /chaperone_audit_unrecordable_requests_total\{reason="collector_behind",outcome="refused"[^}]*\} 1/,
      );
      since = Date.now() - 29_000;
      assert.equal((await sc.get()).status, 200);
      since = undefined;
      assert.equal((await sc.get()).status, 200);
    } finally {
      await sc.close();
    }
    const off = await sidecar({ collector: { maxLagMs: 0, behindSince: () => Date.now() - 3_600_000 } });
    try {
      assert.equal((await off.get()).status, 200, 'a bound of 0 is off');
    } finally {
      await off.close();
    }
  });
});
