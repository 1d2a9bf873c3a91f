// Fault test with real processes: sidecar-like clients stream 100,000 events
// while the collector is killed with SIGKILL and restarted, again and again.
// Afterwards every event is stored exactly once and every chain verifies.
// Kills are triggered by progress (acknowledged events), not by timers.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AuditStore, PostgresStore, SqliteStore, verifyStore } from '@chaperone/collector';
import { makeChain, streamEvents } from '@chaperone/collector/testing';
import type { AuditEvent } from '@chaperone/shared';
import { type AgentPod, boundToken, createAgentPod, tokenIssuer } from './collector-kube.ts';
import {
  CHAPERONE_BIN,
  type CollectorProcess,
  childEnv,
  startCollectorProcess,
} from './collector-process.ts';
import { createDatabase, createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { waitForServiceAccount } from './injector-harness.ts';
import { freePort } from './ports.ts';

const CLIENTS = 4;
const PER_CLIENT = 25_000;
const TOTAL = CLIENTS * PER_CLIENT;
/** Kill the collector each time another 12% of all events have been acknowledged. */
const KILL_EVERY = Math.floor(TOTAL * 0.12);

interface Sidecar {
  readonly pod: AgentPod;
  readonly sidecarId: string;
  readonly token: string;
  readonly events: AuditEvent[];
}

describe('collector under SIGKILL', () => {
  let ns: TestNamespace;
  let dir: string;
  let sidecars: Sidecar[];
  const QUERY_TOKEN = 'fault-test-query-token-0123456789';
  let tokenFile: string;
  /** Token verification, the query token and the log level: the same for every replica. */
  const commonArgs = () => [
    '--kubeconfig',
    kubeInfo().kubeconfigPath,
    '--token-issuer',
    tokenIssuer(),
    '--query-token-file',
    tokenFile,
    '--log-level',
    'warn',
  ];

  before(async () => {
    ns = await createNamespace('collector-fault');
    dir = mkdtempSync(join(tmpdir(), 'chaperone-fault-'));
    tokenFile = join(dir, 'query-token');
    writeFileSync(tokenFile, QUERY_TOKEN, { mode: 0o600 });
    await waitForServiceAccount(kubeInfo(), ns.name);
    sidecars = Array.from({ length: CLIENTS }, (_, i) => {
      const pod = createAgentPod(ns.name, `agent-${i}`);
      const sidecarId = `${ns.name}/agent-${i}/${pod.uid}`;
      const source = {
        namespace: ns.name,
        pod: pod.pod,
        podUID: pod.uid,
        serviceAccount: pod.serviceAccount,
        sidecarId,
      };
      return {
        pod,
        sidecarId,
        token: boundToken(pod),
        events: makeChain(source, PER_CLIENT, {
          spec: (seq) => (seq % 10 === 0 ? { action: 'deny', rule: 'no-secrets', resource: 'secrets' } : {}),
        }),
      };
    });
  });

  after(async () => {
    await ns?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Streams every sidecar's events, killing a replica each KILL_EVERY acknowledged events. */
  async function run(replicas: CollectorProcess[], restart: (i: number) => Promise<CollectorProcess>) {
    let acked = 0;
    let kills = 0;
    let killing: Promise<void> = Promise.resolve();
    let nextKill = KILL_EVERY;
    let attempt = 0;
    const onAck = () => {
      if (acked < nextKill) return;
      nextKill += KILL_EVERY;
      const victim = kills % replicas.length;
      kills++;
      killing = killing.then(async () => {
        await (replicas[victim] as CollectorProcess).kill9();
        replicas[victim] = await restart(victim);
      });
    };
    const results = await Promise.all(
      sidecars.map((s) => {
        let last = 0;
        return streamEvents({
          url: () => (replicas[attempt++ % replicas.length] as CollectorProcess).url,
          token: () => s.token,
          sidecarId: s.sidecarId,
          events: s.events,
          batchSize: 500,
          reconnectDelayMs: 50,
          deadlineMs: 240_000,
          onAck: (a) => {
            acked += Math.max(0, a.upToSeq - last);
            last = Math.max(last, a.upToSeq);
            onAck();
          },
        });
      }),
    );
    await killing;
    return { results, kills };
  }

  async function checkStore(store: AuditStore) {
    assert.equal((await store.stats()).events, TOTAL, 'every event stored exactly once');
    const reports = [];
    for await (const r of verifyStore(store)) reports.push(r);
    assert.equal(reports.length, CLIENTS);
    for (const r of reports) {
      assert.equal(r.status, 'ok', `${r.sidecarId}: ${r.problems.map((p) => p.message).join('; ')}`);
      assert.equal(r.events, PER_CLIENT);
      assert.equal(r.head.seq, PER_CLIENT);
    }
    assert.deepEqual(await store.listAlerts({}, 10), [], 'restarts cause no integrity alerts');
  }

  it('embedded store: nothing lost, nothing doubled, every chain verifies', {
    timeout: 600_000,
  }, async () => {
    const dataDir = join(dir, 'embedded');
    const port = await freePort();
    const args = ['--storage', 'embedded', '--data-dir', dataDir, ...commonArgs()];
    let generation = 0;
    const start = () =>
      startCollectorProcess({ name: `collector-embedded-${generation++}`, port, args, logDir: dir });
    const replicas = [await start()];
    try {
      const { results, kills } = await run(replicas, () => start());
      assert.ok(kills >= 5, `the collector was killed ${kills} times`);
      for (const r of results) assert.equal(r.head.seq, PER_CLIENT);
      assert.ok(results.reduce((n, r) => n + r.connections, 0) > CLIENTS, 'clients had to reconnect');
      // The query API of the last incarnation sees everything.
      const res = await fetch(`${replicas[0]?.url}/v1/events?decision=deny&limit=1`, {
        headers: { authorization: `Bearer ${QUERY_TOKEN}` },
      });
      assert.equal(res.status, 200);
    } finally {
      for (const r of replicas) await r.stop();
    }
    const store = new SqliteStore({ dataDir, mustExist: true });
    try {
      await checkStore(store);
    } finally {
      await store.close();
    }
    // And the operator verb agrees.
    const verify = spawnSync(
      process.execPath,
      [CHAPERONE_BIN, 'audit', 'verify', '--storage', 'embedded', '--data-dir', dataDir],
      {
        encoding: 'utf8',
        env: childEnv(),
      },
    );
    assert.equal(verify.status, 0, verify.stderr);
    assert.match(
      verify.stdout,
      new RegExp(
        `${CLIENTS} chains: ${CLIENTS} intact, 0 with alerts recorded at ingest, 0 changed after ingest`,
      ),
    );
  });

  it('PostgreSQL with two replicas: nothing lost, nothing doubled, every chain verifies', {
    timeout: 600_000,
  }, async () => {
    const db = await createDatabase('collector_fault');
    const ports = [await freePort(), await freePort()];
    const args = [
      '--storage',
      'postgres',
      '--postgres-url',
      db.url,
      '--postgres-pool-size',
      '4',
      ...commonArgs(),
    ];
    let generation = 0;
    const start = (i: number) =>
      startCollectorProcess({
        name: `collector-pg-${i}-${generation++}`,
        port: ports[i] as number,
        args,
        logDir: dir,
      });
    const replicas = [await start(0), await start(1)];
    try {
      const { results, kills } = await run(replicas, (i) => start(i));
      assert.ok(kills >= 5, `replicas were killed ${kills} times`);
      for (const r of results) assert.equal(r.head.seq, PER_CLIENT);
    } finally {
      for (const r of replicas) await r.stop();
    }
    const store = await PostgresStore.open({ url: db.url, poolSize: 2, noMigrate: true });
    try {
      await checkStore(store);
    } finally {
      await store.close();
      await db.drop();
    }
  });
});
