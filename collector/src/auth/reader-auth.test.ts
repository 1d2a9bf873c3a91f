/**
 * Query readers scoped by RBAC: which authenticator claims a token, which
 * namespaces a Kubernetes identity reads, and how often the API server is
 * asked. Counting and inspecting those calls needs a stand-in for the API
 * server's TokenReview and SubjectAccessReview endpoints (it answers as the
 * API server does, from a table of tokens and grants); the real API server
 * and RBAC are exercised end to end in e2e/src/collector-auth.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeClient } from '@chaperone/shared/kube';
import { UnsecuredJWT } from 'jose';
import { AccessReview, type ResourceQuestion } from './access-review.ts';
import { approverAuth } from './approver-auth.ts';
import { type QueryAuthenticator, staticTokenAuth } from './query-auth.ts';
import { READ_GROUP, READ_RESOURCE, READ_VERB, ReaderAccess } from './reader-access.ts';
import { readerAuth } from './reader-auth.ts';
import type { AuthError } from './sidecar-identity.ts';

interface Review {
  readonly user: string;
  readonly groups: readonly string[];
  readonly attrs: ResourceQuestion;
}

/** Users by token, and the namespaces ('' for cluster-wide) each user or group may list events in. */
function apiServerStandIn(
  tokens: Record<string, { username: string; groups: string[] }>,
  grants: Map<string, Set<string>>,
) {
  const tokenReviews: string[] = [];
  const reviews: Review[] = [];
  const kube = {
    async request(_method: string, path: string, opts: { body: { spec: Record<string, unknown> } }) {
      await new Promise((r) => setTimeout(r, 2));
      if (path.endsWith('/tokenreviews')) {
        const token = opts.body.spec.token as string;
        tokenReviews.push(token);
        const user = tokens[token];
        return {
          status: 201,
          body: {
            status: user
              ? { authenticated: true, user: { ...user, uid: `uid-${user.username}` } }
              : { authenticated: false, error: 'invalid bearer token' },
          },
        };
      }
      const spec = opts.body.spec as { user: string; groups: string[]; resourceAttributes: ResourceQuestion };
      reviews.push({ user: spec.user, groups: spec.groups, attrs: spec.resourceAttributes });
      const a = spec.resourceAttributes;
      const fits = a.verb === READ_VERB && a.group === READ_GROUP && a.resource === READ_RESOURCE;
      const allowed =
        fits &&
        [spec.user, ...spec.groups].some((s) => {
          const g = grants.get(s);
          return g !== undefined && (g.has('') || g.has(a.namespace));
        });
      return { status: 201, body: { status: { allowed } } };
    },
  } as unknown as KubeClient;
  return { kube, tokenReviews, reviews };
}

const KNOWN = ['team-a', 'team-b', 'team-c'];

function setup(grants: Map<string, Set<string>>, opts: { cacheMs?: number; clock?: { t: number } } = {}) {
  const api = apiServerStandIn(
    {
      'kube-token-alice': { username: 'alice', groups: ['system:authenticated'] },
      'kube-token-ops': { username: 'system:serviceaccount:ops:auditor', groups: ['auditors'] },
      'kube-token-nobody': { username: 'nobody', groups: ['system:authenticated'] },
    },
    grants,
  );
  let namespaceReads = 0;
  const now = opts.clock ? () => (opts.clock as { t: number }).t : undefined;
  const access = new ReaderAccess({
    review: new AccessReview({
      kube: api.kube,
      ...(opts.cacheMs !== undefined ? { cacheMs: opts.cacheMs } : {}),
      ...(now ? { now } : {}),
    }),
    knownNamespaces: async () => {
      namespaceReads++;
      return [...KNOWN, 'team-a'];
    },
    ...(now ? { now } : {}),
  });
  return { ...api, access, namespaceReads: () => namespaceReads, now };
}

const subject = (user: string, groups: string[] = []) => ({ user, groups, extra: {} });

describe('reader access (RBAC scope)', () => {
  // Fails if the scope ignores RBAC (e.g. '*' for every identity, or every known namespace): tried.
  it('cluster-wide list on events.chaperone.dev reads every namespace; otherwise the known namespaces RBAC allows', async () => {
    const s = setup(
      new Map([
        ['auditors', new Set([''])],
        ['alice', new Set(['team-a', 'team-c', 'not-known'])],
      ]),
    );
    assert.equal(await s.access.scopeOf(subject('system:serviceaccount:ops:auditor', ['auditors'])), '*');
    assert.deepEqual(
      s.reviews.map((r) => r.attrs),
      [{ verb: 'list', group: 'chaperone.dev', resource: 'events', namespace: '' }],
    );
    assert.deepEqual(await s.access.scopeOf(subject('alice')), new Set(['team-a', 'team-c']));
    assert.deepEqual(
      s.reviews
        .filter((r) => r.user === 'alice')
        .map((r) => r.attrs.namespace)
        .sort(),
      ['', 'team-a', 'team-b', 'team-c'],
      'one review cluster-wide, then one per known namespace (each once)',
    );
    assert.deepEqual(await s.access.scopeOf(subject('nobody')), new Set(), 'allowed nowhere: nothing');
  });

  // Fails if answers are not reused (or reused forever: the removal never counts): tried.
  it('reuses answers per identity within the cache window, and sees a removed binding after it', async () => {
    const clock = { t: 1_000_000 };
    const grants = new Map([['alice', new Set(['team-b'])]]);
    const s = setup(grants, { clock });
    const many = await Promise.all(Array.from({ length: 20 }, () => s.access.scopeOf(subject('alice'))));
    for (const scope of many) assert.deepEqual(scope, new Set(['team-b']));
    assert.equal(s.reviews.length, 4, 'concurrent scopes of one identity ask each question once');
    assert.equal(s.namespaceReads(), 1);
    grants.delete('alice');
    clock.t += 9_000;
    assert.deepEqual(await s.access.scopeOf(subject('alice')), new Set(['team-b']));
    assert.equal(s.reviews.length, 4, 'within 10 s: from memory');
    assert.equal(s.namespaceReads(), 2, 'the namespace list is re-read after 5 s');
    clock.t += 2_000;
    assert.deepEqual(await s.access.scopeOf(subject('alice')), new Set());
    assert.equal(s.reviews.length, 8);
    // Another identity is asked about on its own.
    await s.access.scopeOf(subject('alice', ['team-a-readers']));
    assert.equal(s.reviews.length, 12);
  });
});

const jwt = (iss: string) =>
  new UnsecuredJWT({ sub: 'alice' }).setIssuer(iss).setExpirationTime('5m').encode();

/** Readers of TokenReview identities (alice reads everywhere) on a clock the test moves. */
function clockedReader(t: number) {
  const clock = { t };
  const s = setup(new Map([['alice', new Set([''])]]), { clock });
  const auth = readerAuth({
    identities: approverAuth({ kube: s.kube }),
    access: s.access,
    now: () => clock.t,
  });
  return { clock, s, auth };
}

describe('reader authentication', () => {
  const STATIC = 'static-query-token-0123456789';

  // Fails if a matching static token is sent to TokenReview, or the static principal is scoped by RBAC: tried.
  it('a configured query token is claimed first and never reaches the API server', async () => {
    const s = setup(new Map());
    const auth = readerAuth({
      tokens: staticTokenAuth(STATIC),
      identities: approverAuth({ kube: s.kube }),
      access: s.access,
    });
    assert.deepEqual(await auth.authenticate(`Bearer ${STATIC}`), {
      subject: 'static-token',
      namespaces: '*',
      via: 'static',
    });
    assert.deepEqual([s.tokenReviews.length, s.reviews.length], [0, 0]);
    await assert.rejects(auth.authenticate(undefined), /send a bearer token/);
    await assert.rejects(auth.authenticate('Bearer kube-token-unknown'), (err: AuthError) => {
      assert.equal(err.code, 'unauthenticated');
      assert.match(
        err.message,
        /not valid for this collector \(not one of its query tokens\), and the API server did not accept the token: invalid bearer token/,
      );
      return true;
    });
  });

  // Fails if a Kubernetes token is given '*' or an error instead of its RBAC scope: tried.
  it('a Kubernetes token is reviewed and scoped by RBAC; allowed nowhere, it reads nothing but is known', async () => {
    const s = setup(new Map([['alice', new Set(['team-a'])]]));
    const auth = readerAuth({
      tokens: staticTokenAuth(STATIC),
      identities: approverAuth({ kube: s.kube }),
      access: s.access,
    });
    assert.deepEqual(await auth.authenticate('Bearer kube-token-alice'), {
      subject: 'alice',
      namespaces: new Set(['team-a']),
      groups: ['system:authenticated'],
      via: 'tokenreview',
    });
    const nobody = await auth.authenticate('Bearer kube-token-nobody');
    assert.deepEqual([nobody.subject, nobody.namespaces, nobody.via], ['nobody', new Set(), 'tokenreview']);
  });

  // Fails if accepted identities are not remembered, or remembered with a cache of 0: tried.
  it('remembers an accepted token for the cache window only', async () => {
    const { clock, s, auth } = clockedReader(5_000_000);
    for (let i = 0; i < 5; i++) await auth.authenticate('Bearer kube-token-alice');
    assert.equal(s.tokenReviews.length, 1);
    clock.t += 10_001;
    await auth.authenticate('Bearer kube-token-alice');
    assert.equal(s.tokenReviews.length, 2);
    const uncached = setup(new Map([['alice', new Set([''])]]), { cacheMs: 0 });
    const every = readerAuth({
      identities: approverAuth({ kube: uncached.kube }),
      access: uncached.access,
      cacheMs: 0,
    });
    for (let i = 0; i < 3; i++) await every.authenticate('Bearer kube-token-alice');
    assert.deepEqual([uncached.tokenReviews.length, uncached.reviews.length], [3, 3]);
  });

  // Fails if a refused token is reviewed again within the window, or concurrent requests each review: tried.
  it('refuses a refused token from memory for the cache window, and reviews a token once at a time', async () => {
    const { clock, s, auth } = clockedReader(7_000_000);
    const made = Array.from({ length: 10 }, () => auth.authenticate('Bearer made-up-token'));
    for (const r of made) await assert.rejects(r, /did not accept the token: invalid bearer token/);
    await assert.rejects(auth.authenticate('Bearer made-up-token'), /did not accept the token/);
    assert.equal(s.tokenReviews.length, 1, 'ten at once and one after: one TokenReview');
    clock.t += 10_001;
    await assert.rejects(auth.authenticate('Bearer made-up-token'), /did not accept the token/);
    assert.equal(s.tokenReviews.length, 2, 'after the window: asked again');
    const alice = await Promise.all(
      Array.from({ length: 10 }, () => auth.authenticate('Bearer kube-token-alice')),
    );
    for (const p of alice) assert.equal(p.subject, 'alice');
    assert.equal(s.tokenReviews.length, 3, 'ten at once: one TokenReview');
  });

  // Fails if ID tokens of the configured issuer reach TokenReview, or a group-file scope is replaced by RBAC: tried.
  it('ID tokens of the OIDC issuer go to OIDC: scoped by the group file when there is one, else by RBAC with the prefixes', async () => {
    const issuer = 'https://idp.example';
    const idp: QueryAuthenticator = {
      async authenticate() {
        return {
          subject: 'u-1',
          username: 'alice',
          groups: ['team-b-devs'],
          namespaces: new Set(['team-c']),
          via: 'oidc',
        };
      },
    };
    const s = setup(new Map([['oidc:team-b-devs', new Set(['team-b'])]]));
    const byFile = readerAuth({
      oidc: { issuer, auth: idp },
      identities: approverAuth({ kube: s.kube }),
      access: s.access,
    });
    assert.deepEqual((await byFile.authenticate(`Bearer ${jwt(issuer)}`)).namespaces, new Set(['team-c']));
    assert.deepEqual([s.tokenReviews.length, s.reviews.length], [0, 0]);
    const byRbac = readerAuth({
      identities: approverAuth({
        kube: s.kube,
        oidc: { issuer, auth: idp, prefixes: { usernamePrefix: 'oidc:', groupsPrefix: 'oidc:' } },
      }),
      access: s.access,
    });
    assert.deepEqual(await byRbac.authenticate(`Bearer ${jwt(issuer)}`), {
      subject: 'oidc:alice',
      namespaces: new Set(['team-b']),
      groups: ['oidc:team-b-devs'],
      via: 'oidc',
    });
    assert.equal(s.tokenReviews.length, 0);
    assert.ok(s.reviews.every((r) => r.user === 'oidc:alice' && r.groups[0] === 'oidc:team-b-devs'));
    // A JWT of another issuer is a Kubernetes token to review.
    await assert.rejects(byFile.authenticate(`Bearer ${jwt('https://elsewhere.example')}`), /did not accept/);
    assert.equal(s.tokenReviews.length, 1);
  });
});
