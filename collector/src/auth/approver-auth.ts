/**
 * Who an approver is. Approvers present a bearer token: a Kubernetes token
 * (checked with TokenReview for the API server's own audience: a user's or
 * a service account's token, as kubectl would send it) or, when the query API
 * uses OIDC, an ID token from that issuer (checked as query-auth.ts checks
 * it, against the issuer's keys). What they may do is for RBAC to say
 * (approval-access.ts).
 */
import { ChaperoneError } from '@chaperone/shared';
import type { KubeClient } from '@chaperone/shared/kube';
import { decodeJwt } from 'jose';
import { type OidcPrefixes, oidcIdentity } from './oidc-identity.ts';
import { bearer, type QueryAuthenticator } from './query-auth.ts';
import { AuthError } from './sidecar-identity.ts';
import { reviewToken } from './token-review-verifier.ts';

export const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';
export const POD_UID_EXTRA = 'authentication.kubernetes.io/pod-uid';

export interface Approver {
  /** The user name as TokenReview gave it, or the OIDC username claim behind --oidc-username-prefix. */
  readonly user: string;
  readonly groups: readonly string[];
  readonly uid?: string;
  /** TokenReview's extra attributes (the pod a bound token belongs to among them), passed on to SubjectAccessReview. */
  readonly extra: Readonly<Record<string, readonly string[]>>;
  readonly via: 'tokenreview' | 'oidc';
}

export interface ApproverAuthenticator {
  authenticate(authorization: string | undefined): Promise<Approver>;
}

export interface ApproverAuthOptions {
  /** The API server: TokenReview. */
  readonly kube: KubeClient;
  /**
   * ID tokens of this issuer are verified by `oidc` instead (made with a
   * `usernameClaim`), and named with `prefixes` as the API server would.
   */
  readonly oidc?: {
    readonly issuer: string;
    readonly auth: QueryAuthenticator;
    readonly prefixes: OidcPrefixes;
  };
}

/** The `iss` of a JWT, unverified (to choose who verifies it); undefined for anything else. */
export function issuerOf(token: string): string | undefined {
  try {
    return decodeJwt(token).iss;
  } catch {
    return undefined;
  }
}

export function approverAuth(opts: ApproverAuthOptions): ApproverAuthenticator {
  return {
    async authenticate(authorization) {
      const token = bearer(authorization);
      const oidc = opts.oidc;
      if (oidc && issuerOf(token) === oidc.issuer) {
        const p = await oidc.auth.authenticate(authorization);
        return {
          ...oidcIdentity(p.username ?? p.subject, p.groups ?? [], oidc.prefixes),
          extra: {},
          via: 'oidc',
        };
      }
      const status = await reviewToken(opts.kube, token);
      if (!status.authenticated)
        throw new AuthError(
          'unauthenticated',
          `the API server did not accept the token: ${status.error ?? 'no reason given'}${oidc ? ` (an OIDC ID token must be issued by ${oidc.issuer})` : ''}`,
        );
      const user = status.user?.username;
      if (!user) throw new ChaperoneError('unavailable', 'the TokenReview named no user');
      return {
        user,
        groups: status.user?.groups ?? [],
        ...(status.user?.uid ? { uid: status.user.uid } : {}),
        extra: status.user?.extra ?? {},
        via: 'tokenreview',
      };
    },
  };
}
