import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { describe, it } from 'node:test';
import { createLocalIssuer, LOCAL_ISSUER } from './local-issuer.ts';

describe('the local issuer', () => {
  it('signs service-account-shaped tokens that its published key verifies', () => {
    const issuer = createLocalIssuer(() => 1_700_000_000_000);
    const token = issuer.token(
      { namespace: 'dev', pod: 'local-me-host', podUID: 'u-1', serviceAccount: 'chaperone-local' },
      60,
    );
    const [h, p, s] = token.split('.') as [string, string, string];
    const header = JSON.parse(Buffer.from(h, 'base64url').toString());
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
    const jwk = issuer.jwks.keys[0] as { kid: string };
    assert.equal(header.kid, jwk.kid);
    assert.equal(header.alg, 'ES256');
    assert.equal(payload.iss, LOCAL_ISSUER);
    assert.deepEqual(payload.aud, ['chaperone-collector']);
    assert.equal(payload.sub, 'system:serviceaccount:dev:chaperone-local');
    assert.equal(payload.exp - payload.iat, 60);
    assert.deepEqual(payload['kubernetes.io'].pod, { name: 'local-me-host', uid: 'u-1' });
    const key = createPublicKey({ key: jwk as never, format: 'jwk' });
    const ok = (sig: Buffer) =>
      verify('SHA256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, sig);
    assert.ok(ok(Buffer.from(s, 'base64url')));
    const other = createLocalIssuer().token(
      { namespace: 'dev', pod: 'x', podUID: 'u', serviceAccount: 'y' },
      60,
    );
    assert.ok(!ok(Buffer.from(other.split('.')[2] as string, 'base64url')));
  });
});
