// Sidecar authentication against the real control plane: bound tokens from
// the TokenRequest API, verified by the collector with the issuer's keys
// (JWKS) or with TokenReview. The token's pod is the identity.
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { COLLECTOR_SCHEMA, type RunningCollector, startCollector } from '@chaperone/collector';
import { type Connection, connectIngest, makeChain } from '@chaperone/collector/testing';
import {
  CLOSE_CODES,
  createLogger,
  createRegistry,
  encodeMessage,
  type NackMessage,
  parseConfig,
} from '@chaperone/shared';
import { SignJWT } from 'jose';
import { type AgentPod, boundToken, createAgentPod, deletePod, tokenIssuer } from './collector-kube.ts';
import { createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { waitForServiceAccount } from './injector-harness.ts';
import { kubectlJson } from './kubectl.ts';
import { waitFor } from './process.ts';

const QUERY_TOKEN = 'auth-test-query-token-0123456789';

async function start(dir: string, ingestAuth: 'jwks' | 'tokenreview'): Promise<RunningCollector> {
  const kube = kubeInfo();
  const config = parseConfig(COLLECTOR_SCHEMA, {
    flags: {
      listenHost: '127.0.0.1',
      listenPort: '0',
      metricsHost: '127.0.0.1',
      metricsPort: '0',
      dataDir: mkdtempSync(join(dir, `${ingestAuth}-`)),
      kubeconfig: kube.kubeconfigPath,
      ingestAuth,
      tokenIssuer: tokenIssuer(),
      queryToken: QUERY_TOKEN,
      logLevel: 'warn',
    },
  });
  const logger = createLogger({
    name: 'collector',
    level: 'warn',
    destination: new Writable({ write: (_c, _e, cb) => cb() }),
  });
  return startCollector(config, {
    logger,
    registry: createRegistry({ component: 'collector', defaultMetrics: false }),
  });
}

function source(p: AgentPod) {
  return {
    namespace: p.namespace,
    pod: p.pod,
    podUID: p.uid,
    serviceAccount: p.serviceAccount,
    sidecarId: `sc-${p.uid}`,
  };
}

async function helloAndSend(conn: Extract<Connection, { ok: true }>, p: AgentPod, as: AgentPod = p) {
  conn.ws.send(encodeMessage({ type: 'hello', sidecarId: source(as).sidecarId, schemaVersion: 1 }));
  const welcome = await conn.messages.next();
  assert.equal(welcome.type, 'welcome');
  conn.ws.send(encodeMessage({ type: 'batch', batchId: 1, events: makeChain(source(as), 3) }));
  return conn.messages.next();
}

describe('collector authentication with the real control plane', () => {
  const kube = kubeInfo();
  let ns: TestNamespace;
  let dir: string;
  let podA: AgentPod;
  let podB: AgentPod;
  let jwks: RunningCollector;
  let review: RunningCollector;

  before(async () => {
    ns = await createNamespace('collector-auth');
    dir = mkdtempSync(join(tmpdir(), 'chaperone-auth-'));
    await waitForServiceAccount(kube, ns.name);
    podA = createAgentPod(ns.name, 'agent-a');
    podB = createAgentPod(ns.name, 'agent-b');
    jwks = await start(dir, 'jwks');
    review = await start(dir, 'tokenreview');
  });

  after(async () => {
    await jwks?.close();
    await review?.close();
    await ns?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const mode of ['jwks', 'tokenreview'] as const) {
    const collector = () => (mode === 'jwks' ? jwks : review);

    it(`${mode}: a pod-bound token is accepted and its events are stored under that pod`, async () => {
      const conn = await connectIngest({ url: collector().url, token: boundToken(podA) });
      assert.ok(conn.ok, conn.ok ? '' : conn.body);
      const ack = await helloAndSend(conn, podA);
      assert.deepEqual(ack, { type: 'ack', batchId: 1, upToSeq: 3, stored: 3, duplicates: 0 });
      conn.ws.close();
      const chain = await collector().store.chain(source(podA).sidecarId);
      assert.deepEqual(chain?.owner, {
        namespace: ns.name,
        pod: 'agent-a',
        podUID: podA.uid,
        serviceAccount: 'default',
      });
    });

    it(`${mode}: another pod's token cannot write this pod's events`, async () => {
      const conn = await connectIngest({ url: collector().url, token: boundToken(podB) });
      assert.ok(conn.ok);
      // Its own chain id, but events that claim to come from pod A:
      conn.ws.send(encodeMessage({ type: 'hello', sidecarId: `forged-${mode}`, schemaVersion: 1 }));
      assert.equal((await conn.messages.next()).type, 'welcome');
      const forged = makeChain({ ...source(podA), sidecarId: `forged-${mode}` }, 2);
      conn.ws.send(encodeMessage({ type: 'batch', batchId: 1, events: forged }));
      const nack = (await conn.messages.next()) as NackMessage;
      assert.equal(nack.code, 'identity_mismatch');
      assert.match(nack.message, /pod "agent-a"/);
      conn.ws.close();
      // Pod A's own chain, claimed by pod B:
      const thief = await connectIngest({ url: collector().url, token: boundToken(podB) });
      assert.ok(thief.ok);
      thief.ws.send(encodeMessage({ type: 'hello', sidecarId: source(podA).sidecarId, schemaVersion: 1 }));
      await assert.rejects(
        thief.messages.next(),
        (err: { code?: number }) => err.code === CLOSE_CODES.forbidden,
      );
      const kinds = (await collector().store.listAlerts({ namespace: ns.name }, 10)).map((a) => a.kind);
      assert.ok(kinds.includes('identity_mismatch'));
      assert.ok(kinds.includes('chain_owner_mismatch'));
    });

    it(`${mode}: a token for another audience is refused`, async () => {
      const conn = await connectIngest({
        url: collector().url,
        token: boundToken(podA, 'kubernetes-dashboard'),
      });
      assert.equal(conn.ok, false);
      if (!conn.ok) {
        assert.equal(conn.status, 401);
        assert.match(conn.body, /chaperone-collector/);
      }
    });

    it(`${mode}: no token, or a malformed one, is refused`, async () => {
      for (const token of [undefined, 'abc.def.ghi']) {
        const conn = await connectIngest({ url: collector().url, ...(token ? { token } : {}) });
        assert.equal(conn.ok, false);
        assert.equal(!conn.ok && conn.status, 401);
      }
    });
  }

  it('jwks: an expired token signed with the cluster key is refused', {
    skip: kube.mode !== 'local' && 'needs the local control plane’s signing key',
  }, async () => {
    // TokenRequest refuses lifetimes under 10 minutes, so sign an already-expired
    // token with the control plane's own service-account key, with the claims the
    // API server would have put in it.
    const keyPem = readFileSync(join(kube.dir as string, 'pki', 'sa.key'), 'utf8');
    const set = kubectlJson(kube.kubeconfigPath, ['get', '--raw', '/openid/v1/jwks']) as {
      keys: { kid: string }[];
    };
    const kid = set.keys[0]?.kid as string;
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({
      'kubernetes.io': {
        namespace: ns.name,
        pod: { name: podA.pod, uid: podA.uid },
        serviceaccount: { name: 'default', uid: 'x' },
      },
    })
      .setProtectedHeader({ alg: 'RS256', kid })
      .setIssuer(tokenIssuer())
      .setAudience('chaperone-collector')
      .setSubject(`system:serviceaccount:${ns.name}:default`)
      .setIssuedAt(now - 7200)
      .setNotBefore(now - 7200)
      .setExpirationTime(now - 3600)
      .sign(createPrivateKey(keyPem));
    const conn = await connectIngest({ url: jwks.url, token: expired });
    assert.equal(conn.ok, false);
    if (!conn.ok) {
      assert.equal(conn.status, 401);
      assert.match(conn.body, /expired/);
    }
  });

  it('tokenreview: a token stops working once its pod is deleted', async () => {
    const doomed = createAgentPod(ns.name, 'agent-doomed');
    const token = boundToken(doomed);
    const ok = await connectIngest({ url: review.url, token });
    assert.ok(ok.ok);
    ok.ws.close();
    deletePod(doomed);
    // TokenReview asks the API server, which also checks that the bound pod still exists.
    // The API server caches authentications for about 10 s: wait until it has noticed.
    await waitFor(
      async () => {
        const r = kubectlJson(
          kube.kubeconfigPath,
          ['create', '-f', '-', '-o', 'json'],
          JSON.stringify({
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenReview',
            spec: { token, audiences: ['chaperone-collector'] },
          }),
        ) as { status: { authenticated?: boolean } };
        return r.status.authenticated !== true;
      },
      { what: 'the API server to invalidate the deleted pod’s token', timeoutMs: 30_000, intervalMs: 500 },
    );
    // The collector caches reviews for 30 s too; one with an empty cache shows the answer at once.
    const fresh = await start(dir, 'tokenreview');
    try {
      const refused = await connectIngest({ url: fresh.url, token });
      assert.equal(refused.ok, false);
      if (!refused.ok) {
        assert.equal(refused.status, 401);
        assert.match(refused.body, /did not accept the token/);
      }
    } finally {
      await fresh.close();
    }
  });
});
