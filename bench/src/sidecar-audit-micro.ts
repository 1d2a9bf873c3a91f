/**
 * Diagnostic micro-benchmark of the sidecar's per-request audit path, using
 * its own code (read-only imports): building the event, chaining it
 * (canonical JSON + SHA-256), serialising it, and appending it to a spool on
 * the same disk the benchmark uses — with and without the sidecar's periodic
 * fdatasync running — plus the small per-request helpers (UUID, timestamps).
 * Run on an otherwise idle machine:
 *
 *   node bench/src/sidecar-audit-micro.ts [--sync-ms 200]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { canonicalJson, chainEvent, createLogger, createRegistry, microTime } from '@chaperone/shared';
import { AuditRecorder } from '../../sidecar/src/audit/recorder.ts';
import { Spool } from '../../sidecar/src/audit/spool.ts';
import { buildIdentity } from '../../sidecar/src/identity.ts';
import type { KubeRequestContext } from '../../sidecar/src/kube/context.ts';
import { sidecarMetrics } from '../../sidecar/src/metrics.ts';

const N = 20_000;

function time(name: string, n: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(2000, n); i++) fn(i); // warm up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  const us = ((performance.now() - t0) * 1000) / n;
  console.log(`${us.toFixed(2).padStart(8)} µs  ${name}`);
  return us;
}

function fakeContext(): KubeRequestContext {
  const req = {
    url: '/api/v1/namespaces/chaperone-bench/configmaps/bench-config',
    method: 'GET',
    headers: { 'user-agent': 'wrk', accept: 'application/json' },
    socket: { remoteAddress: '127.0.0.1' },
  };
  const res = { headersSent: true, statusCode: 200 };
  return {
    req,
    res,
    startNs: process.hrtime.bigint(),
    receivedAt: new Date(),
    auditID: randomUUID(),
    path: req.url,
    query: new URLSearchParams(),
    remoteAddress: '127.0.0.1',
    info: {
      isResourceRequest: true,
      verb: 'get',
      apiGroup: '',
      apiVersion: 'v1',
      resource: 'configmaps',
      namespace: 'chaperone-bench',
      name: 'bench-config',
    },
    decision: { action: 'allow', rule: 'default', reason: 'default_action', message: 'allowed by default' },
    maskedFields: 0,
    overheadNs: 123_456n,
  } as unknown as KubeRequestContext;
}

async function main(): Promise<void> {
  const syncIdx = process.argv.indexOf('--sync-ms');
  const syncMs = syncIdx !== -1 ? Number(process.argv[syncIdx + 1]) : 200;
  const dir = mkdtempSync(join(tmpdir(), 'chaperone-audit-micro-'));
  const log = createLogger({ name: 'micro', level: 'error' });
  const metrics = sidecarMetrics(createRegistry({ component: 'sidecar' }));
  const identity = buildIdentity(
    { name: 'agent-0', namespace: 'chaperone-bench', uid: 'uid', serviceAccount: 'agent' },
    undefined,
  );
  try {
    const spoolA = Spool.open(join(dir, 'a'), { maxBytes: 2 ** 31 });
    const recorder = new AuditRecorder(spoolA, identity, metrics, log);
    const ctx = fakeContext();
    console.log(`per-request audit path, ${N} iterations each (µs per call):`);
    const build = time('recorder.kubeEvent (build the event object)', N, () => recorder.kubeEvent(ctx));
    const event = recorder.kubeEvent(ctx);
    time('  of which microTime() ×2', N, () => {
      microTime(new Date());
      microTime(new Date());
    });
    const canon = time('canonicalJson(event) (hash input)', N, () => canonicalJson(event));
    const chain = time('chainEvent (spread + canonicalJson + SHA-256)', N, (i) =>
      chainEvent(event, i + 1, 'x'),
    );
    const chained = chainEvent(event, 1, 'x');
    const stringify = time('JSON.stringify(chained event)', N, () => JSON.stringify(chained));
    const size = Buffer.byteLength(JSON.stringify(chained));
    const append = time('Spool.append (chain + stringify + crc32 + writeSync), no fsync running', N, () =>
      spoolA.append(event),
    );
    spoolA.close();

    // The same with the sidecar's 200 ms fdatasync timer: the event loop is
    // blocked while it runs, and writes to pages under writeback may wait.
    const spoolB = Spool.open(join(dir, 'b'), { maxBytes: 2 ** 31 });
    const timer = setInterval(() => spoolB.sync(), syncMs);
    let worst = 0;
    let total = 0;
    const rounds = 40;
    const perRound = 500;
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      for (let i = 0; i < perRound; i++) spoolB.append(event);
      total += performance.now() - t0;
      // Yield so the timer can fire, as it does between requests.
      const s0 = performance.now();
      await new Promise((res) => setTimeout(res, 10));
      worst = Math.max(worst, performance.now() - s0 - 10);
    }
    clearInterval(timer);
    const syncs: number[] = [];
    for (let i = 0; i < 10; i++) {
      for (let j = 0; j < 600; j++) spoolB.append(event); // ~200 ms of events at 3k req/s
      const t0 = performance.now();
      spoolB.sync();
      syncs.push(performance.now() - t0);
    }
    spoolB.close();
    syncs.sort((a, b) => a - b);
    const appendWithSync = (total * 1000) / (rounds * perRound);
    console.log(
      `${appendWithSync.toFixed(2).padStart(8)} µs  Spool.append with the ${syncMs} ms fdatasync timer running (timer lateness up to ${worst.toFixed(1)} ms)`,
    );
    console.log(
      `${(syncs[5] as number).toFixed(2).padStart(8)} ms  one fdatasync after ~600 events (median of 10; max ${(syncs[9] as number).toFixed(2)} ms) — the event loop is blocked for this long`,
    );
    time('randomUUID() (audit id)', N, () => randomUUID());
    time('new Date() + process.hrtime.bigint() + new URLSearchParams(url query)', N, () => {
      new Date();
      process.hrtime.bigint();
      new URLSearchParams('');
    });
    console.log(
      `\nevent: ${size} bytes of JSON; build + append ≈ ${(build + append).toFixed(1)} µs per request, of which hashing (canonical JSON + SHA-256) ≈ ${chain.toFixed(1)} µs (canonical JSON alone ${canon.toFixed(1)} µs), stringify ${stringify.toFixed(1)} µs`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
