// `chaperone audit verify` against a store an attacker with database access
// changed after a real collector process stored it, on both stores: the
// embedded SQLite store (with the key the collector generates in its data
// directory) and PostgreSQL (a fresh database per test, the key in a file the
// database does not hold). Without signed checkpoints every case below
// verified clean, because the heads and the retention watermark it checked
// against were in the same database the attacker rewrote.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { makeChain, streamEvents, TestIssuer } from '@chaperone/collector/testing';
import type { AuditEvent } from '@chaperone/shared';
import pg from 'pg';
import { CHAPERONE_BIN, childEnv, startCollectorProcess } from './collector-process.ts';
import { createDatabase, type TestDatabase } from './environment.ts';
import { freePort } from './ports.ts';

const A = {
  namespace: 'agents',
  pod: 'agent-a',
  podUID: 'uid-a',
  serviceAccount: 'agent',
  sidecarId: 'agents/agent-a/uid-a',
};
const B = {
  namespace: 'agents',
  pod: 'agent-b',
  podUID: 'uid-b',
  serviceAccount: 'agent',
  sidecarId: 'agents/agent-b/uid-b',
};
const EVENTS = 40;

type Storage = 'embedded' | 'postgres';

interface Scene {
  readonly dir: string;
  readonly a: AuditEvent[];
  /** SQL as the attacker runs it ($1.. placeholders, in order). */
  sql(text: string, params?: readonly unknown[]): Promise<void>;
  /** Arguments that point a collector or `audit verify` at the store. */
  readonly storeArgs: readonly string[];
  /** Arguments `audit verify` needs to check the checkpoints. */
  readonly verifyArgs: readonly string[];
  /** Streams events as their sidecar through a new collector process (the attacker's, with their own settings). */
  collect(args: readonly string[], who: typeof A, events: readonly AuditEvent[]): Promise<void>;
  verify(): { status: number | null; stdout: string; stderr: string };
}

describe('chaperone audit verify against signed checkpoints', () => {
  let jwks: Server;
  let issuer: TestIssuer;
  let jwksUrl: string;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    issuer = await TestIssuer.create();
    jwks = createServer((_q, res) => res.writeHead(200).end(JSON.stringify({ keys: [issuer.jwk] })));
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`;
  });

  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    jwks?.close();
  });

  async function runCollector(dir: string, args: readonly string[], work: (url: string) => Promise<void>) {
    const tokenFile = join(dir, 'query-token');
    writeFileSync(tokenFile, 'verify-test-query-token-0123456789', { mode: 0o600 });
    const c = await startCollectorProcess({
      name: `collector-${Math.random().toString(36).slice(2, 8)}`,
      port: await freePort(),
      logDir: dir,
      args: [...args, '--jwks-url', jwksUrl, '--query-token-file', tokenFile, '--log-level', 'warn'],
    });
    try {
      await work(c.url);
    } finally {
      await c.stop(); // SIGTERM: the collector signs a last checkpoint of what it committed
    }
  }

  async function stream(url: string, who: typeof A, events: readonly AuditEvent[]) {
    const token = await issuer.token(who);
    await streamEvents({ url, token: () => token, sidecarId: who.sidecarId, events, deadlineMs: 60_000 });
  }

  /** A store two sidecars filled through a real collector, which then shut down. */
  async function scene(storage: Storage): Promise<Scene> {
    const dir = mkdtempSync(join(tmpdir(), 'chaperone-verify-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const dataDir = join(dir, 'data');
    let storeArgs: string[];
    let checkpointArgs: string[] = []; // the embedded default: a key generated in the data directory
    let verifyArgs: string[] = []; // … which verify finds there, with the log beside it
    let sql: Scene['sql'];
    if (storage === 'embedded') {
      storeArgs = ['--data-dir', dataDir];
      sql = async (text, params = []) => {
        const db = new DatabaseSync(join(dataDir, 'audit.db'));
        try {
          db.prepare(text.replace(/\$\d+/g, '?')).run(...(params as never[]));
        } finally {
          db.close();
        }
      };
    } else {
      const db: TestDatabase = await createDatabase('verify');
      cleanups.push(() => db.drop());
      const keyFile = join(dir, 'checkpoint-key.pem');
      const pubFile = join(dir, 'checkpoint-key.pub.pem');
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
      writeFileSync(pubFile, publicKey.export({ type: 'spki', format: 'pem' }) as string);
      const log = join(dir, 'checkpoints', 'checkpoints.log');
      storeArgs = ['--storage', 'postgres', '--postgres-url', db.url, '--data-dir', dataDir];
      checkpointArgs = ['--checkpoint-key-file', keyFile, '--checkpoint-log', log];
      verifyArgs = ['--checkpoint-public-key', pubFile, '--checkpoint-log', log];
      sql = async (text, params = []) => {
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        try {
          await c.query(text, params as unknown[]);
        } finally {
          await c.end();
        }
      };
    }
    const a = makeChain(A, EVENTS);
    await runCollector(dir, [...storeArgs, ...checkpointArgs], async (url) => {
      await stream(url, A, a);
      await stream(url, B, makeChain(B, 10));
    });
    return {
      dir,
      a,
      sql,
      storeArgs,
      verifyArgs,
      collect: (args, who, events) =>
        runCollector(dir, [...storeArgs, ...args], (url) => stream(url, who, events)),
      verify: () =>
        spawnSync(process.execPath, [CHAPERONE_BIN, 'audit', 'verify', ...storeArgs, ...verifyArgs], {
          encoding: 'utf8',
          env: childEnv(),
          timeout: 60_000,
        }),
    };
  }

  function assertTampered(r: ReturnType<Scene['verify']>, chain: string, kind: string, detail: RegExp) {
    assert.equal(r.status, 1, `audit verify must fail: ${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^TAMPERED\\s+${chain}\\s`, 'm'));
    assert.match(r.stdout, new RegExp(`CHANGED AFTER INGEST: ${kind}: .*${detail.source}`, 'm'));
    assert.match(r.stderr, /changed after ingest: the store has been tampered with/);
  }

  for (const storage of ['embedded', 'postgres'] as const) {
    describe(storage, () => {
      it('an intact store verifies clean against its checkpoints', async () => {
        const s = await scene(storage);
        const r = s.verify();
        assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
        assert.match(r.stdout, /^checkpoints: [1-9]\d* verified with key \S+ \([1-9]\d* from the log/m);
        assert.match(r.stdout, /^OK\s+agents\/agent-a\/uid-a\s+agents\/agent-a\s+40 events, head seq 40$/m);
        assert.match(r.stdout, /^OK\s+agents\/agent-b\/uid-b\s/m);
        assert.doesNotMatch(r.stdout, /warning:/);
      });

      it('reports a deleted tail whose head was moved back', async () => {
        // Fails without the tail_deleted check in checkpoints-verify.ts (tried: the run exits 0,
        // "OK agents/agent-a/uid-a … head seq 30"), and without the shutdown checkpoint in checkpoints-writer.ts.
        const s = await scene(storage);
        await s.sql('DELETE FROM events WHERE sidecar_id = $1 AND seq > 30', [A.sidecarId]);
        await s.sql('UPDATE chains SET head_seq = 30, head_hash = $1 WHERE sidecar_id = $2', [
          s.a[29]?.chaperone.hash,
          A.sidecarId,
        ]);
        assertTampered(s.verify(), A.sidecarId, 'tail_deleted', /events 31\.\.40 were deleted/);
      });

      it('reports a deleted chain', async () => {
        // Fails without CheckpointCheck.missing (tried: only agents/agent-a/uid-a is listed and the run exits 0).
        const s = await scene(storage);
        await s.sql('DELETE FROM events WHERE sidecar_id = $1', [B.sidecarId]);
        await s.sql('DELETE FROM chains WHERE sidecar_id = $1', [B.sidecarId]);
        assertTampered(s.verify(), B.sidecarId, 'chain_deleted', /the store has no such chain/);
      });

      it('reports a history rewritten and re-hashed', async () => {
        // Fails without the hash comparison at the signed seq (tried: "OK agents/agent-a/uid-a", exit 0).
        const s = await scene(storage);
        await s.sql('DELETE FROM events WHERE sidecar_id = $1', [A.sidecarId]);
        await s.sql('DELETE FROM chains WHERE sidecar_id = $1', [A.sidecarId]);
        // The chain has no key: the attacker rebuilds it with one event changed and stores it through
        // a collector of their own, which has no access to the checkpoint key (signs with their own).
        const attackerKey = join(s.dir, 'attacker.pem');
        writeFileSync(
          attackerKey,
          generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
        );
        const forged = makeChain(A, EVENTS, {
          spec: (i) => (i === 7 ? { verb: 'list', resource: 'configmaps' } : {}),
        });
        await s.collect(
          ['--checkpoint-key-file', attackerKey, '--checkpoint-log', join(s.dir, 'attacker.log')],
          A,
          forged,
        );
        assertTampered(s.verify(), A.sidecarId, 'history_rewritten', /does not have the hash the checkpoint/);
      });

      it('reports a forged retention watermark', async () => {
        // Fails without the retention bound in CheckpointCheck (#watermarkTooFar; tried: "OK agents/agent-a/uid-a
        // 20 events", exit 0): the events arrived moments ago, within the 90-day retention.
        const s = await scene(storage);
        await s.sql('DELETE FROM events WHERE sidecar_id = $1 AND seq <= 20', [A.sidecarId]);
        await s.sql('UPDATE chains SET pruned_seq = 20, pruned_hash = $1 WHERE sidecar_id = $2', [
          s.a[19]?.chaperone.hash,
          A.sidecarId,
        ]);
        assertTampered(s.verify(), A.sidecarId, 'watermark_forged', /within the retention period of 90 days/);
      });

      it('reports a forged checkpoint and goes on verifying the chains', async () => {
        // Fails if a checkpoint whose signature does not verify were ignored silently (tried: exit 0).
        const s = await scene(storage);
        await s.sql('INSERT INTO checkpoints (created_us, kid, jws) VALUES ($1, $2, $3)', [
          Date.now() * 1000,
          'forged',
          'eyJhbGciOiJFZERTQSJ9.eyJ0eXAiOiJ4In0.AAAA',
        ]);
        const r = s.verify();
        assert.equal(r.status, 1, r.stdout);
        assert.match(r.stdout, /^CHECKPOINT INVALID: stored checkpoint \d+: signature does not verify/m);
        assert.match(r.stdout, /^OK\s+agents\/agent-a\/uid-a\s/m);
        assert.match(r.stderr, /checkpoint does not verify/);
      });
    });
  }
});
