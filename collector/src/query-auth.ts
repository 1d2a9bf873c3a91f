/**
 * Authentication of the query API. Either a static bearer token (the
 * embedded default; compared in constant time) or OIDC: a JWT verified with
 * jose against the issuer's published keys (discovered from
 * `<issuer>/.well-known/openid-configuration`), with issuer and audience
 * pinned and, optionally, membership of an allowed group.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ChaperoneError } from '@chaperone/shared';
import { createRemoteJWKSet, errors, jwtVerify } from 'jose';
import { AuthError } from './sidecar-identity.ts';

export interface Principal {
  /** Who asked, for the access log: `static-token` or the token's subject. */
  readonly subject: string;
}

export interface QueryAuthenticator {
  authenticate(authorization: string | undefined): Promise<Principal>;
}

function bearer(authorization: string | undefined): string {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  if (!m) throw new AuthError('unauthenticated', 'send a bearer token: Authorization: Bearer <token>');
  return m[1] as string;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export function staticTokenAuth(token: string): QueryAuthenticator {
  if (token.length < 16)
    throw new ChaperoneError('config_invalid', 'the query token must be at least 16 characters');
  const want = digest(token);
  return {
    async authenticate(authorization) {
      const got = digest(bearer(authorization));
      if (!timingSafeEqual(got, want))
        throw new AuthError('unauthenticated', 'the token is not valid for this collector');
      return { subject: 'static-token' };
    },
  };
}

export interface OidcOptions {
  issuer: string;
  audience: string;
  /** When non-empty, the token's groups claim must contain one of these. */
  allowedGroups: readonly string[];
  groupsClaim: string;
  /** Overrides discovery (tests, or issuers without discovery). */
  jwksUrl?: string;
}

export function oidcAuth(opts: OidcOptions): QueryAuthenticator {
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  const keys = async () => {
    if (jwks) return jwks;
    let uri = opts.jwksUrl;
    if (!uri) {
      const url = `${opts.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok)
        throw new ChaperoneError('unavailable', `OIDC discovery at ${url} answered HTTP ${res.status}`);
      const doc = (await res.json()) as { issuer?: string; jwks_uri?: string };
      if (doc.issuer !== opts.issuer)
        throw new ChaperoneError(
          'unavailable',
          `OIDC discovery names issuer ${doc.issuer}, expected ${opts.issuer}`,
        );
      if (!doc.jwks_uri) throw new ChaperoneError('unavailable', `OIDC discovery at ${url} has no jwks_uri`);
      uri = doc.jwks_uri;
    }
    jwks = createRemoteJWKSet(new URL(uri));
    return jwks;
  };
  return {
    async authenticate(authorization) {
      const token = bearer(authorization);
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(token, await keys(), {
          issuer: opts.issuer,
          audience: opts.audience,
          clockTolerance: 5,
        }));
      } catch (err) {
        if (err instanceof ChaperoneError) throw err;
        if (err instanceof errors.JWKSTimeout || !(err instanceof errors.JOSEError))
          throw new ChaperoneError('unavailable', `cannot verify OIDC tokens: ${(err as Error).message}`);
        if (err instanceof errors.JWTExpired) throw new AuthError('unauthenticated', 'the token has expired');
        if (err instanceof errors.JWTClaimValidationFailed)
          throw new AuthError('unauthenticated', `the token's ${err.claim} claim is not acceptable`);
        throw new AuthError('unauthenticated', `the token is not valid: ${(err as Error).message}`);
      }
      if (opts.allowedGroups.length > 0) {
        const groups = payload[opts.groupsClaim];
        const list = Array.isArray(groups) ? groups.map(String) : typeof groups === 'string' ? [groups] : [];
        if (!list.some((g) => opts.allowedGroups.includes(g)))
          throw new AuthError(
            'forbidden',
            `${String(payload.sub)} is not in a group allowed to read the audit log`,
          );
      }
      return { subject: String(payload.sub ?? 'unknown') };
    },
  };
}
