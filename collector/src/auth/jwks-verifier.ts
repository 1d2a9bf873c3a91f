/**
 * Verifies projected service-account tokens locally with jose against the
 * cluster's service-account issuer keys (JWKS), pinning issuer and audience
 * (legacy Secret tokens are signed by the same keys, so both pins matter).
 * Keys are refreshed every few minutes and at once (rate-limited) when a
 * token names a key id we do not have, so key rotation needs no restart.
 */
import { ChaperoneError, type Logger } from '@chaperone/shared';
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTPayload, jwtVerify } from 'jose';
import {
  AuthError,
  NO_POD_UID,
  NOT_POD_BOUND,
  type TokenVerifier,
  type VerifiedSidecar,
} from './sidecar-identity.ts';

export interface JwksVerifierOptions {
  /** Fetches the current key set (e.g. GET /openid/v1/jwks on the API server). */
  fetchJwks: () => Promise<JSONWebKeySet>;
  issuer: string;
  audience: string;
  logger: Logger;
  /** Allowed clock difference, seconds. */
  clockToleranceSec?: number;
  refreshMs?: number;
  /** Minimum time between refreshes caused by unknown key ids. */
  cooldownMs?: number;
  now?: () => number;
}

interface KubernetesClaims {
  namespace?: string;
  pod?: { name?: string; uid?: string };
  serviceaccount?: { name?: string; uid?: string };
}

export class JwksVerifier implements TokenVerifier {
  readonly #opts: JwksVerifierOptions;
  #keys: ReturnType<typeof createLocalJWKSet> | undefined;
  #fetchedAt = 0;
  #inflight: Promise<void> | undefined;
  /** The last failed load, reused briefly so a down issuer is not hammered by every connection. */
  #failure: { at: number; error: unknown } | undefined;

  constructor(opts: JwksVerifierOptions) {
    this.#opts = opts;
  }

  #now(): number {
    return this.#opts.now?.() ?? Date.now();
  }

  async #refresh(): Promise<void> {
    if (this.#failure && this.#now() - this.#failure.at < 2000) throw this.#failure.error;
    this.#inflight ??= (async () => {
      try {
        const jwks = await this.#opts.fetchJwks().catch((error: unknown) => {
          this.#failure = { at: this.#now(), error };
          throw error;
        });
        this.#failure = undefined;
        if (!Array.isArray(jwks?.keys) || jwks.keys.length === 0)
          throw new ChaperoneError('unavailable', 'the issuer published an empty key set');
        this.#keys = createLocalJWKSet(jwks);
        this.#fetchedAt = this.#now();
        this.#opts.logger.debug({ keys: jwks.keys.length }, 'service-account issuer keys loaded');
      } finally {
        this.#inflight = undefined;
      }
    })();
    return this.#inflight;
  }

  async verify(token: string): Promise<VerifiedSidecar> {
    const refreshMs = this.#opts.refreshMs ?? 300_000;
    if (!this.#keys || this.#now() - this.#fetchedAt > refreshMs) {
      try {
        await this.#refresh();
      } catch (err) {
        if (!this.#keys)
          throw new ChaperoneError(
            'unavailable',
            `cannot load the service-account issuer keys: ${(err as Error).message}`,
            { cause: err },
          );
        this.#opts.logger.warn(
          { err },
          'refreshing the service-account issuer keys failed; using the cached ones',
        );
      }
    }
    let payload: JWTPayload;
    try {
      payload = await this.#check(token);
    } catch (err) {
      if (
        err instanceof errors.JWKSNoMatchingKey &&
        this.#now() - this.#fetchedAt > (this.#opts.cooldownMs ?? 10_000)
      ) {
        await this.#refresh().catch(() => {});
        payload = await this.#check(token).catch((e: unknown) => {
          throw reason(e);
        });
      } else {
        throw reason(err);
      }
    }
    return identityFromClaims(payload);
  }

  async #check(token: string): Promise<JWTPayload> {
    const keys = this.#keys as ReturnType<typeof createLocalJWKSet>;
    const { payload } = await jwtVerify(token, keys, {
      issuer: this.#opts.issuer,
      audience: this.#opts.audience,
      clockTolerance: this.#opts.clockToleranceSec ?? 5,
      currentDate: new Date(this.#now()),
      requiredClaims: ['exp', 'sub'],
    });
    return payload;
  }
}

function reason(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  if (err instanceof errors.JWTExpired)
    return new AuthError('unauthenticated', 'the token has expired: send a fresh one', { cause: err });
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'aud')
      return new AuthError(
        'unauthenticated',
        'the token was not issued for this collector (audience must be chaperone-collector)',
        { cause: err },
      );
    if (err.claim === 'iss')
      return new AuthError(
        'unauthenticated',
        "the token was not issued by this cluster's service-account issuer",
        { cause: err },
      );
    return new AuthError(
      'unauthenticated',
      `the token's ${err.claim} claim is not acceptable: ${err.message}`,
      { cause: err },
    );
  }
  if (err instanceof errors.JWKSNoMatchingKey)
    return new AuthError('unauthenticated', 'the token is signed by a key this cluster does not publish', {
      cause: err,
    });
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return new AuthError('unauthenticated', 'the token signature is invalid', { cause: err });
  return new AuthError('unauthenticated', `the token is not valid: ${(err as Error).message}`, {
    cause: err,
  });
}

function identityFromClaims(payload: JWTPayload): VerifiedSidecar {
  const k = payload['kubernetes.io'] as KubernetesClaims | undefined;
  const namespace = k?.namespace;
  const sa = k?.serviceaccount?.name;
  const pod = k?.pod?.name;
  if (!namespace || !sa)
    throw new AuthError('unauthenticated', 'the token is not a Kubernetes service-account token');
  if (!pod) throw new AuthError('forbidden', NOT_POD_BOUND);
  const podUID = k?.pod?.uid;
  if (!podUID) throw new AuthError('forbidden', NO_POD_UID);
  const username = `system:serviceaccount:${namespace}:${sa}`;
  if (payload.sub !== username)
    throw new AuthError('unauthenticated', `the token's subject ${payload.sub} does not match its claims`);
  return {
    namespace,
    pod,
    podUID,
    serviceAccount: sa,
    username,
    ...(payload.exp ? { expiresAtMs: payload.exp * 1000 } : {}),
  };
}
