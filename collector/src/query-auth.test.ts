import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { oidcAuth, staticTokenAuth } from './query-auth.ts';

describe('query API authentication', () => {
  it('static token: constant-time match, clear refusals', async () => {
    const auth = staticTokenAuth('s3cret-query-token-1234');
    assert.deepEqual(await auth.authenticate('Bearer s3cret-query-token-1234'), { subject: 'static-token' });
    await assert.rejects(auth.authenticate('Bearer nope'), /not valid/);
    await assert.rejects(auth.authenticate(undefined), /bearer token/);
    await assert.rejects(auth.authenticate('Basic abc'), /bearer token/);
    assert.throws(() => staticTokenAuth('short'), /at least 16/);
  });

  describe('OIDC', () => {
    let server: Server;
    let issuer: string;
    let sign: (claims: Record<string, unknown>, aud?: string) => Promise<string>;
    before(async () => {
      const { privateKey, publicKey } = await generateKeyPair('ES256');
      const jwk = { ...(await exportJWK(publicKey)), kid: 'idp-1', alg: 'ES256' };
      server = createServer((req, res) => {
        if (req.url === '/.well-known/openid-configuration')
          res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/keys` }));
        else if (req.url === '/keys') res.end(JSON.stringify({ keys: [jwk] }));
        else res.writeHead(404).end();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      sign = (claims, aud = 'chaperone') =>
        new SignJWT(claims)
          .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
          .setIssuer(issuer)
          .setAudience(aud)
          .setSubject(String(claims.sub ?? 'alice'))
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(privateKey);
    });
    after(() => server.close());

    it('accepts tokens of the configured issuer and audience, and enforces groups', async () => {
      const auth = oidcAuth({
        issuer,
        audience: 'chaperone',
        allowedGroups: ['security'],
        groupsClaim: 'groups',
      });
      assert.deepEqual(
        await auth.authenticate(`Bearer ${await sign({ sub: 'alice', groups: ['security'] })}`),
        {
          subject: 'alice',
        },
      );
      await assert.rejects(
        auth.authenticate(`Bearer ${await sign({ sub: 'bob', groups: ['dev'] })}`),
        (err: { code?: string; message: string }) =>
          err.code === 'forbidden' && /bob is not in a group/.test(err.message),
      );
      await assert.rejects(
        auth.authenticate(`Bearer ${await sign({ groups: ['security'] }, 'other-app')}`),
        /aud claim/,
      );
      const open = oidcAuth({ issuer, audience: 'chaperone', allowedGroups: [], groupsClaim: 'groups' });
      assert.deepEqual(await open.authenticate(`Bearer ${await sign({ sub: 'carol' })}`), {
        subject: 'carol',
      });
    });
  });
});
