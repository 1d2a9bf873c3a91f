import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JSONWebKeySet } from 'jose';
import { memoryLogger, TEST_ISSUER, TestIssuer } from '../testing/test-harness.ts';
import { JwksVerifier } from './jwks-verifier.ts';
import { AuthError } from './sidecar-identity.ts';

const POD = { namespace: 'agents', pod: 'agent-0', podUID: 'uid-0', serviceAccount: 'agent' };

function verifier(fetchJwks: () => Promise<JSONWebKeySet>, now?: () => number) {
  return new JwksVerifier({
    fetchJwks,
    issuer: TEST_ISSUER,
    audience: 'chaperone-collector',
    logger: memoryLogger([]),
    cooldownMs: 0,
    ...(now ? { now } : {}),
  });
}

describe('JWKS verifier', () => {
  it('takes the identity from the pod claims', async () => {
    const issuer = await TestIssuer.create();
    const v = verifier(async () => ({ keys: [issuer.jwk] }));
    const id = await v.verify(await issuer.token(POD));
    assert.equal(id.namespace, 'agents');
    assert.equal(id.pod, 'agent-0');
    assert.equal(id.podUID, 'uid-0');
    assert.equal(id.serviceAccount, 'agent');
    assert.equal(id.username, 'system:serviceaccount:agents:agent');
    assert.ok(id.expiresAtMs && id.expiresAtMs > Date.now());
  });

  // Fails when a pod claim without a uid is accepted (the chain id is built from the uid, so
  // such a token would share a chain with every pod of that name). Tried: the rejection fails.
  it('refuses a pod claim without the pod uid (403)', async () => {
    const issuer = await TestIssuer.create();
    const v = verifier(async () => ({ keys: [issuer.jwk] }));
    await assert.rejects(
      v.verify(await issuer.token(POD, { noPodUID: true })),
      (err: unknown) =>
        err instanceof AuthError && err.code === 'forbidden' && /not its uid/.test(err.message),
    );
  });

  it('follows a key rotation: an unknown key id reloads the key set', async () => {
    const old = await TestIssuer.create('old');
    const rotated = await TestIssuer.create('new');
    let keys = [old.jwk];
    let loads = 0;
    const v = verifier(async () => {
      loads++;
      return { keys };
    });
    await v.verify(await old.token(POD));
    keys = [old.jwk, rotated.jwk];
    await v.verify(await rotated.token(POD));
    assert.equal(loads, 2);
    await v.verify(await rotated.token(POD));
    assert.equal(loads, 2, 'known keys are not reloaded');
  });

  it('refuses legacy tokens without a pod binding (403) and inconsistent subjects', async () => {
    const issuer = await TestIssuer.create();
    const v = verifier(async () => ({ keys: [issuer.jwk] }));
    await assert.rejects(v.verify(await issuer.token({ ...POD, pod: undefined })), (err: unknown) => {
      assert.ok(err instanceof AuthError);
      assert.equal(err.code, 'forbidden');
      return true;
    });
  });

  it('reports an unreachable issuer as unavailable, not as a bad token, and does not hammer it', async () => {
    let calls = 0;
    let t = 1_000_000;
    const v = verifier(
      async () => {
        calls++;
        throw new Error('connect ECONNREFUSED');
      },
      () => t,
    );
    const issuer = await TestIssuer.create();
    const token = await issuer.token(POD);
    for (let i = 0; i < 5; i++)
      await assert.rejects(v.verify(token), (err: { code?: string; message: string }) => {
        assert.equal(err.code, 'unavailable');
        assert.match(err.message, /ECONNREFUSED/);
        return true;
      });
    assert.equal(calls, 1);
    t += 3000;
    await assert.rejects(v.verify(token));
    assert.equal(calls, 2);
  });
});
