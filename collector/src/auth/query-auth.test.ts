import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import {
  oidcAuth,
  parseGroupNamespaces,
  parseQueryTokens,
  scopedTokenAuth,
  staticTokenAuth,
} from './query-auth.ts';

describe('query API authentication', () => {
  it('static token: constant-time match, clear refusals', async () => {
    const auth = staticTokenAuth('s3cret-query-token-1234');
    assert.deepEqual(await auth.authenticate('Bearer s3cret-query-token-1234'), {
      subject: 'static-token',
      namespaces: '*',
      via: 'static',
    });
    await assert.rejects(auth.authenticate('Bearer nope'), /not valid/);
    await assert.rejects(auth.authenticate(undefined), /bearer token/);
    await assert.rejects(auth.authenticate('Basic abc'), /bearer token/);
    assert.throws(() => staticTokenAuth('short'), /at least 16/);
  });

  // Fails if parseQueryTokens accepts a malformed line or scopedTokenAuth returns the wrong
  // token's namespaces (e.g. the last entry compared instead of the matching one): tried.
  it('tokens file: each token reads its own namespaces, malformed files are refused', async () => {
    const tokens = parseQueryTokens(
      [
        '# token name namespaces',
        '',
        'aaaaaaaaaaaaaaaa-security  security  *',
        '\tbbbbbbbbbbbbbbbb-team-a\tteam-a-reader\tteam-a,team-c  ',
        'cccccccccccccccc-team-b team-b-reader team-b',
      ].join('\r\n'),
    );
    const auth = scopedTokenAuth(tokens);
    assert.deepEqual(await auth.authenticate('Bearer aaaaaaaaaaaaaaaa-security'), {
      subject: 'security',
      namespaces: '*',
      via: 'static',
    });
    assert.deepEqual(await auth.authenticate('Bearer bbbbbbbbbbbbbbbb-team-a'), {
      subject: 'team-a-reader',
      namespaces: new Set(['team-a', 'team-c']),
      via: 'static',
    });
    assert.deepEqual(await auth.authenticate('Bearer cccccccccccccccc-team-b'), {
      subject: 'team-b-reader',
      namespaces: new Set(['team-b']),
      via: 'static',
    });
    await assert.rejects(auth.authenticate('Bearer dddddddddddddddd-nobody'), /not valid/);

    const bad: [string, RegExp][] = [
      ['', /lists no tokens/],
      ['# only a comment', /lists no tokens/],
      ['tok-0123456789abcdef reader', /line 1: expected .* got 2 fields/],
      ['tok-0123456789abcdef reader team-a extra', /got 4 fields/],
      ['tok-0123456789abcdef reader Team-A', /"Team-A" is not a namespace name/],
      ['tok-0123456789abcdef reader team-a,*', /"\*" is not a namespace name/],
      ['tok-0123456789abcdef reader team-a,', /"" is not a namespace name/],
      ['tok-0123456789abcdef re/ader team-a', /line 1: the name/],
      ['\n\ntok-\u00e9123456789abcdef reader team-a', /line 3: the token must be printable ASCII/],
    ];
    for (const [text, want] of bad) assert.throws(() => parseQueryTokens(text), want, JSON.stringify(text));
    // Never the token itself in an error.
    assert.throws(
      () => parseQueryTokens('secret-token-0123456789 reader NS'),
      (err: Error) => !err.message.includes('secret-token'),
    );
    assert.throws(
      () => scopedTokenAuth(parseQueryTokens('short reader team-a')),
      /query token reader must be at least 16/,
    );
    assert.throws(
      () =>
        scopedTokenAuth(parseQueryTokens('tok-0123456789abcdef one team-a\ntok-0123456789abcdef two team-b')),
      /listed twice/,
    );
    assert.throws(
      () =>
        scopedTokenAuth(parseQueryTokens('tok-0123456789abcdef one team-a\ntok-0123456789abcdeX one team-b')),
      /two query tokens are named one/,
    );
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
          namespaces: '*',
          groups: ['security'],
          via: 'oidc',
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
        namespaces: '*',
        groups: [],
        via: 'oidc',
      });
    });

    it('names the user by --oidc-username-claim when asked to, and refuses a token without it', async () => {
      const auth = oidcAuth({
        issuer,
        audience: 'chaperone',
        allowedGroups: [],
        groupsClaim: 'groups',
        usernameClaim: 'email',
      });
      const p = await auth.authenticate(`Bearer ${await sign({ sub: 'u-1', email: 'dana@example.com' })}`);
      assert.equal(p.username, 'dana@example.com');
      assert.equal(p.subject, 'u-1');
      await assert.rejects(auth.authenticate(`Bearer ${await sign({ sub: 'u-2' })}`), /no email claim/);
      await assert.rejects(
        auth.authenticate(
          `Bearer ${await sign({ sub: 'u-3', email: 'x@example.com', email_verified: false })}`,
        ),
        /not verified/,
      );
    });

    // Fails if oidcAuth ignores groupNamespaces (every caller would read '*'): tried.
    it('scopes callers by group: the union over their groups, nothing for a group not listed', async () => {
      const auth = oidcAuth({
        issuer,
        audience: 'chaperone',
        allowedGroups: [],
        groupsClaim: 'groups',
        groupNamespaces: parseGroupNamespaces(
          '# group  namespaces\nteam-a  team-a,shared\nteam-b team-b\nsecurity *\n',
        ),
      });
      const scope = async (groups: unknown) =>
        (await auth.authenticate(`Bearer ${await sign({ sub: 'dana', groups })}`)).namespaces;
      assert.deepEqual(await scope(['team-a']), new Set(['team-a', 'shared']));
      assert.deepEqual(
        await scope(['team-a', 'team-b', 'elsewhere']),
        new Set(['team-a', 'shared', 'team-b']),
      );
      assert.equal(await scope(['team-b', 'security']), '*');
      assert.deepEqual(await scope('team-b'), new Set(['team-b']));
      for (const groups of [['dev'], [], undefined])
        await assert.rejects(scope(groups), (err: { code?: string; message: string }) => {
          assert.equal(err.code, 'forbidden');
          assert.match(err.message, /dana is in no group that --oidc-group-namespaces lets read/);
          return true;
        });
    });

    it('refuses a malformed group namespaces file with the line', () => {
      assert.throws(() => parseGroupNamespaces('team-a\n'), /line 1: expected `<group> <namespace>/);
      assert.throws(() => parseGroupNamespaces('a b\na c\n'), /line 2: the group a is listed twice/);
      assert.throws(() => parseGroupNamespaces('a Team-A\n'), /"Team-A" is not a namespace name/);
      assert.throws(() => parseGroupNamespaces('# nothing\n'), /lists no groups/);
    });
  });
});
