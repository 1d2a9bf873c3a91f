/**
 * Authentication of the query API when the collector talks to the API
 * server (--query-rbac): the configured callers as before, and Kubernetes
 * identities, whose namespaces RBAC decides (reader-access.ts). A bearer
 * token is tried in this order, and goes no further than the first that
 * claims it:
 *
 *  1. the configured query tokens (--query-token, --query-token-file,
 *     --query-tokens-file), compared in constant time: a match is that
 *     token's principal, and the token never leaves the collector;
 *  2. a JWT whose `iss` is --oidc-issuer: verified against the issuer's keys,
 *     never sent to the API server. With --oidc-group-namespaces it is scoped
 *     by that file exactly as without readers; without it, it is named with
 *     --oidc-username-prefix/--oidc-groups-prefix as approvers are, and
 *     scoped by RBAC;
 *  3. anything else: the API server's TokenReview (approver-auth.ts, for the
 *     API server's own audience, as kubectl sends it), then RBAC.
 *
 * An identity RBAC allows nowhere gets an empty scope: it reads nothing, and
 * /v1/whoami still says who it is. Accepted Kubernetes identities are
 * remembered by the token's hash for `cacheMs` (never past the token's
 * `exp`), as RBAC answers are, so a console polling the API costs the API
 * server little and a revoked token or binding stops working within it.
 * A token the API server refused is refused from memory for as long, and a
 * token is reviewed once at a time, so requests with made-up tokens cannot
 * turn into a TokenReview each.
 */
import { createHash } from 'node:crypto';
import { decodeJwt } from 'jose';
import type { Approver, ApproverAuthenticator } from './approver-auth.ts';
import { issuerOf } from './approver-auth.ts';
import { bearer, type Principal, type QueryAuthenticator } from './query-auth.ts';
import type { ReaderAccess } from './reader-access.ts';
import { AuthError } from './sidecar-identity.ts';

export interface ReaderAuthOptions {
  /** The configured query tokens, tried first. */
  readonly tokens?: QueryAuthenticator;
  /** ID tokens of `issuer` go to `auth` and nowhere else (OIDC scoped by --oidc-group-namespaces). */
  readonly oidc?: { readonly issuer: string; readonly auth: QueryAuthenticator };
  /** Everything else: TokenReview, and OIDC named with the prefixes when `oidc` is absent. */
  readonly identities: ApproverAuthenticator;
  readonly access: ReaderAccess;
  /** How long an accepted Kubernetes identity is remembered (default 10 s; 0: ask every time). */
  readonly cacheMs?: number;
  readonly maxCacheEntries?: number;
  readonly now?: () => number;
}

function expiryOf(token: string): number {
  try {
    const exp = decodeJwt(token).exp;
    return exp === undefined ? Infinity : exp * 1000;
  } catch {
    return Infinity;
  }
}

export function readerAuth(opts: ReaderAuthOptions): QueryAuthenticator {
  const cacheMs = opts.cacheMs ?? 10_000;
  const maxEntries = opts.maxCacheEntries ?? 10_000;
  const known = new Map<string, { at: number; until: number; who: Approver }>();
  const refused = new Map<string, { at: number; err: AuthError }>();
  const asking = new Map<string, Promise<Approver>>();

  function remember<V>(cache: Map<string, V>, key: string, value: V): void {
    if (cacheMs <= 0) return;
    if (cache.size >= maxEntries) cache.clear();
    cache.set(key, value);
  }

  async function review(authorization: string, token: string, key: string, now: number): Promise<Approver> {
    try {
      const who = await opts.identities.authenticate(authorization);
      remember(known, key, { at: now, until: expiryOf(token), who });
      return who;
    } catch (err) {
      // Only a refusal is remembered: an API server that could not answer is asked again.
      if (err instanceof AuthError && err.code === 'unauthenticated')
        remember(refused, key, { at: now, err });
      throw err;
    }
  }

  async function identify(authorization: string, token: string): Promise<Approver> {
    const now = opts.now?.() ?? Date.now();
    const key = createHash('sha256').update(token).digest('base64');
    const hit = known.get(key);
    if (hit && now - hit.at < cacheMs && now < hit.until) return hit.who;
    const no = refused.get(key);
    if (no && now - no.at < cacheMs) throw no.err;
    const pending = asking.get(key);
    if (pending) return pending;
    const p = review(authorization, token, key, now);
    asking.set(key, p);
    try {
      return await p;
    } finally {
      asking.delete(key);
    }
  }

  return {
    async authenticate(authorization): Promise<Principal> {
      const token = bearer(authorization);
      if (opts.tokens) {
        try {
          return await opts.tokens.authenticate(authorization);
        } catch (err) {
          if (!(err instanceof AuthError && err.code === 'unauthenticated')) throw err;
        }
      }
      if (opts.oidc && issuerOf(token) === opts.oidc.issuer)
        return opts.oidc.auth.authenticate(authorization);
      let who: Approver;
      try {
        who = await identify(authorization as string, token);
      } catch (err) {
        if (opts.tokens && err instanceof AuthError && err.code === 'unauthenticated')
          throw new AuthError(
            'unauthenticated',
            `the token is not valid for this collector (not one of its query tokens), and ${err.message}`,
          );
        throw err;
      }
      return {
        subject: who.user,
        namespaces: await opts.access.scopeOf(who),
        groups: who.groups,
        via: who.via,
      };
    },
  };
}
