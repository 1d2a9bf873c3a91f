/**
 * Who the sidecar acts as: the pod's service account, from the claims of its
 * own projected token (falling back to the downward-API values), plus the pod
 * itself. Both end up in every audit event.
 */
import { deepFreeze, type EventSource, type UserInfo } from '@chaperone/shared';

export interface Identity {
  readonly user: UserInfo;
  readonly source: EventSource;
}

interface TokenClaims {
  sub?: string;
  'kubernetes.io'?: {
    namespace?: string;
    pod?: { name?: string; uid?: string };
    serviceaccount?: { name?: string; uid?: string };
  };
}

/** The claims of a JWT, unverified (it is our own token; the API server verifies it). */
export function decodeClaims(token: string): TokenClaims | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as TokenClaims;
  } catch {
    return undefined;
  }
}

export function buildIdentity(
  pod: { name: string; namespace: string; uid: string; serviceAccount: string },
  token: string | undefined,
): Identity {
  const claims = token ? decodeClaims(token) : undefined;
  const k = claims?.['kubernetes.io'];
  const namespace = k?.namespace ?? pod.namespace;
  const serviceAccount = k?.serviceaccount?.name ?? pod.serviceAccount;
  const podUID = k?.pod?.uid ?? pod.uid;
  const username = claims?.sub ?? `system:serviceaccount:${namespace}:${serviceAccount}`;
  // Frozen: every audit event carries these objects, and their canonical text is then encoded once.
  return deepFreeze({
    // Members in canonical (sorted) order, as every audit event carries them (see recorder.ts).
    user: {
      ...(k?.pod?.name ? { extra: { 'authentication.kubernetes.io/pod-name': [k.pod.name] } } : {}),
      groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
      ...(k?.serviceaccount?.uid ? { uid: k.serviceaccount.uid } : {}),
      username,
    },
    source: {
      namespace: pod.namespace,
      pod: pod.name,
      ...(podUID ? { podUID } : {}),
      serviceAccount,
      sidecarId: `${pod.namespace}/${pod.name}/${podUID || 'no-uid'}`,
    },
  });
}
