/**
 * Verifies sidecar tokens with the API server's TokenReview, for clusters
 * whose issuer keys are not reachable. Stronger than local verification in
 * one way: the API server also checks that the pod the token is bound to
 * still exists. Successful reviews are cached briefly (by token hash).
 * What a client can make the API server do is bounded: a token that is not a
 * JWT for this audience, or whose `exp` is past, is refused without a
 * review; a refused token is remembered for `failureCacheMs`; one token is
 * reviewed once at a time however many connections present it (and the
 * connections themselves are bounded per address, http-entry.ts).
 * The collector's service account needs `system:auth-delegator`.
 */
import { createHash } from 'node:crypto';
import { ChaperoneError } from '@chaperone/shared';
import { asStatus, type KubeClient } from '@chaperone/shared/kube';
import { decodeJwt } from 'jose';
import {
  AuthError,
  NO_POD_UID,
  NOT_POD_BOUND,
  parseServiceAccountUser,
  type TokenVerifier,
  type VerifiedSidecar,
} from './sidecar-identity.ts';

export interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  audiences?: string[];
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
}

/**
 * Asks the API server who `token` is (a TokenReview for `audiences`, or for
 * the API server's own when absent). Rejects with `unavailable` when the API
 * server does not answer the review; an unauthenticated token is a status,
 * not an error.
 */
export async function reviewToken(
  kube: KubeClient,
  token: string,
  audiences?: readonly string[],
): Promise<TokenReviewStatus> {
  const path = '/apis/authentication.k8s.io/v1/tokenreviews';
  const res = await kube.request('POST', path, {
    body: {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token, ...(audiences ? { audiences } : {}) },
    },
  });
  if ((res.status !== 201 && res.status !== 200) || typeof res.body !== 'object' || res.body === null) {
    const said = asStatus(res.body)?.message;
    throw new ChaperoneError(
      'unavailable',
      `TokenReview failed with HTTP ${res.status} (the collector's service account needs system:auth-delegator)${said ? `: ${said}` : ''}`,
    );
  }
  return (res.body as { status?: TokenReviewStatus }).status ?? {};
}

export interface TokenReviewVerifierOptions {
  kube: KubeClient;
  audience: string;
  cacheMs?: number;
  /** How long a refused token is refused again without asking the API server (default 10 s). */
  failureCacheMs?: number;
  maxCacheEntries?: number;
  now?: () => number;
}

export class TokenReviewVerifier implements TokenVerifier {
  readonly #opts: TokenReviewVerifierOptions;
  readonly #cache = new Map<string, { at: number; identity: VerifiedSidecar }>();
  readonly #refused = new Map<string, { at: number; err: AuthError }>();
  readonly #inFlight = new Map<string, Promise<VerifiedSidecar>>();

  constructor(opts: TokenReviewVerifierOptions) {
    this.#opts = opts;
  }

  async verify(token: string): Promise<VerifiedSidecar> {
    const now = this.#opts.now?.() ?? Date.now();
    const key = createHash('sha256').update(token).digest('base64');
    const hit = this.#cache.get(key);
    if (hit && now - hit.at < (this.#opts.cacheMs ?? 30_000) && (hit.identity.expiresAtMs ?? Infinity) > now)
      return hit.identity;
    const refused = this.#refused.get(key);
    if (refused && now - refused.at < (this.#opts.failureCacheMs ?? 10_000)) throw refused.err;
    const running = this.#inFlight.get(key);
    if (running) return running;
    const review = this.#review(token, key, now);
    this.#inFlight.set(key, review);
    try {
      return await review;
    } catch (err) {
      if (err instanceof AuthError) {
        if (this.#refused.size >= (this.#opts.maxCacheEntries ?? 10_000)) this.#refused.clear();
        this.#refused.set(key, { at: now, err });
      }
      throw err;
    } finally {
      this.#inFlight.delete(key);
    }
  }

  /** Refuses, without asking the API server, what cannot be a live service-account token for this audience. */
  #precheck(token: string, now: number): ReturnType<typeof decodeJwt> {
    let claims: ReturnType<typeof decodeJwt>;
    try {
      claims = decodeJwt(token);
    } catch {
      throw new AuthError(
        'unauthenticated',
        'the token is not a JWT: send the projected service-account token (audience chaperone-collector)',
      );
    }
    const aud = claims.aud === undefined ? [] : Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes(this.#opts.audience))
      throw new AuthError(
        'unauthenticated',
        'the token was not issued for this collector (audience must be chaperone-collector)',
      );
    if (claims.exp !== undefined && claims.exp * 1000 <= now)
      throw new AuthError('unauthenticated', 'the token has expired');
    return claims;
  }

  async #review(token: string, key: string, now: number): Promise<VerifiedSidecar> {
    const claims = this.#precheck(token, now);
    const status = await reviewToken(this.#opts.kube, token, [this.#opts.audience]);
    if (!status.authenticated)
      throw new AuthError(
        'unauthenticated',
        `the API server did not accept the token: ${status.error ?? 'no reason given'}`,
      );
    if (!status.audiences?.includes(this.#opts.audience))
      throw new AuthError(
        'unauthenticated',
        'the token was not issued for this collector (audience must be chaperone-collector)',
      );
    const username = status.user?.username ?? '';
    const sa = parseServiceAccountUser(username);
    if (!sa) throw new AuthError('unauthenticated', `${username || 'the token'} is not a service account`);
    const pod = status.user?.extra?.['authentication.kubernetes.io/pod-name']?.[0];
    const podUID = status.user?.extra?.['authentication.kubernetes.io/pod-uid']?.[0];
    if (!pod) throw new AuthError('forbidden', NOT_POD_BOUND);
    if (!podUID) throw new AuthError('forbidden', NO_POD_UID);
    // The API server has just validated this token: its exp is when it ends.
    const expiresAtMs = claims.exp ? claims.exp * 1000 : undefined;
    const identity: VerifiedSidecar = {
      namespace: sa.namespace,
      pod,
      podUID,
      serviceAccount: sa.name,
      username,
      ...(expiresAtMs ? { expiresAtMs } : {}),
    };
    if (this.#cache.size >= (this.#opts.maxCacheEntries ?? 10_000)) this.#cache.clear();
    this.#cache.set(key, { at: now, identity });
    return identity;
  }
}
