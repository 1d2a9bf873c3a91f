/**
 * How often the TokenReview verifier asks the API server. Counting those calls
 * needs a stand-in for the API server's TokenReview endpoint (the real one is
 * exercised end to end in e2e/src/collector-approvals.test.ts): it answers as
 * the API server does for a token it does not accept, and counts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeClient } from '@chaperone/shared/kube';
import { UnsecuredJWT } from 'jose';
import { TokenReviewVerifier } from './token-review-verifier.ts';

function apiServerStandIn(): { kube: KubeClient; calls: () => number } {
  let n = 0;
  const kube = {
    async request() {
      n++;
      await new Promise((r) => setTimeout(r, 20));
      return { status: 201, body: { status: { authenticated: false, error: 'invalid bearer token' } } };
    },
  } as unknown as KubeClient;
  return { kube, calls: () => n };
}

const jwt = (aud: string, expSeconds: number) =>
  new UnsecuredJWT({}).setAudience(aud).setExpirationTime(expSeconds).encode();

describe('TokenReview verifier', () => {
  // Fails if refusals are not remembered, or concurrent verifications of one token each ask: tried.
  it('asks the API server once for a token presented many times, and not at all for garbage', async () => {
    let clock = 1_000_000_000_000;
    const { kube, calls } = apiServerStandIn();
    const v = new TokenReviewVerifier({ kube, audience: 'chaperone-collector', now: () => clock });
    const future = Math.floor(clock / 1000) + 600;
    const forged = jwt('chaperone-collector', future);
    const many = await Promise.allSettled(Array.from({ length: 50 }, () => v.verify(forged)));
    assert.ok(
      many.every((r) => r.status === 'rejected' && /did not accept the token/.test(String(r.reason))),
    );
    assert.equal(calls(), 1, 'one review for 50 concurrent verifications');
    await assert.rejects(v.verify(forged), /did not accept the token/);
    assert.equal(calls(), 1, 'a refused token is refused again from memory');
    clock += 11_000;
    await assert.rejects(v.verify(forged), /did not accept the token/);
    assert.equal(calls(), 2, 'and asked about again later');
    for (let i = 0; i < 100; i++) await assert.rejects(v.verify(`garbage-${i}`), /not a JWT/);
    await assert.rejects(v.verify(jwt('someone-else', future)), /not issued for this collector/);
    await assert.rejects(v.verify(jwt('chaperone-collector', Math.floor(clock / 1000) - 1)), /expired/);
    assert.equal(calls(), 2, 'nothing that cannot be a token for this collector reaches the API server');
  });
});
