/**
 * Who a sidecar is: established once per connection from its projected
 * service-account token (JWKS or TokenReview), then compared with every
 * event's `chaperone.source`. The token's pod claims are the identity.
 */
import { ChaperoneError, chainIdFor } from '@chaperone/shared';
import type { Identity } from '../store/store.ts';

export interface VerifiedSidecar extends Identity {
  /** Always known: a bound token names its pod's uid, and the chain id is built from it. */
  readonly podUID: string;
  /** `system:serviceaccount:<ns>:<name>`. */
  readonly username: string;
  /** When the token stops being valid (ms since the epoch); the connection is closed then. */
  readonly expiresAtMs?: number;
}

export interface TokenVerifier {
  /** Resolves with the identity, or rejects with an AuthError (or `unavailable`). */
  verify(token: string): Promise<VerifiedSidecar>;
}

/** A refused credential: `unauthenticated` (HTTP 401) or `forbidden` (HTTP 403), with the reason. */
export class AuthError extends ChaperoneError {
  constructor(code: 'unauthenticated' | 'forbidden', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'AuthError';
  }
}

export const NOT_POD_BOUND =
  'the token is not bound to a pod: mount a projected service-account token (audience chaperone-collector) into the sidecar';

export const NO_POD_UID =
  'the token names a pod but not its uid: mount a projected service-account token (audience chaperone-collector), which the kubelet binds to the pod';

/**
 * Why a connection of `who` may not open the chain `sidecarId`, or
 * undefined: a token opens exactly one chain, its own pod's (chainIdFor).
 */
export function chainRefusal(sidecarId: string, who: VerifiedSidecar): string | undefined {
  const own = chainIdFor(who);
  if (sidecarId === own) return undefined;
  return `this token belongs to pod ${who.namespace}/${who.pod} (uid ${who.podUID}) and opens only chain ${JSON.stringify(own)}, not ${JSON.stringify(sidecarId)}`;
}

/** Parses `system:serviceaccount:<namespace>:<name>`. */
export function parseServiceAccountUser(username: string): { namespace: string; name: string } | undefined {
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
  return m ? { namespace: m[1] as string, name: m[2] as string } : undefined;
}

/**
 * Compares an event's source with the verified identity and the chain the
 * connection said hello for; returns what differs, or undefined.
 */
export function sourceMismatch(
  source: { namespace: string; pod: string; podUID?: string; serviceAccount: string; sidecarId: string },
  who: Identity,
  sidecarId: string,
): string | undefined {
  const diffs: string[] = [];
  if (source.namespace !== who.namespace) diffs.push(`namespace ${JSON.stringify(source.namespace)}`);
  if (source.pod !== who.pod) diffs.push(`pod ${JSON.stringify(source.pod)}`);
  if (source.serviceAccount !== who.serviceAccount)
    diffs.push(`serviceAccount ${JSON.stringify(source.serviceAccount)}`);
  if (source.podUID !== undefined && who.podUID !== undefined && source.podUID !== who.podUID)
    diffs.push(`podUID ${JSON.stringify(source.podUID)}`);
  if (source.sidecarId !== sidecarId) diffs.push(`sidecarId ${JSON.stringify(source.sidecarId)}`);
  return diffs.length ? diffs.join(', ') : undefined;
}
