/**
 * Who a local session is in its audit events. The user: as the API server
 * knows the context's credentials (a SelfSubjectReview, as `kubectl auth
 * whoami` asks), else the context's name. The source: a chain of its own per
 * session, named after the machine's user and host, in the context's
 * namespace, with the service account `chaperone-local`.
 */
import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import type { UserInfo } from '@chaperone/shared';
import { KubeClient, type KubeConnection } from '@chaperone/shared/kube';
import { decodeClaims, type Identity } from '../identity.ts';

export const LOCAL_SERVICE_ACCOUNT = 'chaperone-local';

/** A DNS-label-like name from free text (a user or host name). */
function label(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 30) || 'user'
  );
}

export function localIdentity(namespace: string, user: UserInfo, uid: string = randomUUID()): Identity {
  let who = 'user';
  try {
    who = userInfo().username;
  } catch {
    // no passwd entry: keep the default
  }
  const pod = `local-${label(who)}-${label(hostname())}`;
  return {
    user,
    source: {
      namespace,
      pod,
      podUID: uid,
      serviceAccount: LOCAL_SERVICE_ACCOUNT,
      sidecarId: `${namespace}/${pod}/${uid}`,
    },
  };
}

/**
 * The identity a team's collector files the session under: the pod its token
 * names (a service-account token bound to a pod, as collectors admit), or
 * undefined when the token names none.
 */
export function collectorTokenIdentity(token: string, user: UserInfo): Identity | undefined {
  const k = decodeClaims(token)?.['kubernetes.io'];
  const namespace = k?.namespace;
  const pod = k?.pod?.name;
  const podUID = k?.pod?.uid;
  const serviceAccount = k?.serviceaccount?.name;
  if (!namespace || !pod || !podUID || !serviceAccount) return undefined;
  return {
    user,
    source: { namespace, pod, podUID, serviceAccount, sidecarId: `${namespace}/${pod}/${podUID}` },
  };
}

/** The user the API server sees behind `connection`, or a stand-in named after the context. */
export async function upstreamUser(connection: KubeConnection, contextName: string): Promise<UserInfo> {
  const client = new KubeClient(connection, { userAgent: 'chaperone-local' });
  try {
    const res = await client.request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
      signal: AbortSignal.timeout(10_000),
    });
    const info = (res.body as { status?: { userInfo?: UserInfo } } | undefined)?.status?.userInfo;
    if (res.status === 201 && info?.username) {
      // Members in canonical (sorted) order, as every audit event carries them (recorder.ts).
      return {
        ...(info.groups ? { groups: [...info.groups] } : {}),
        ...(info.uid ? { uid: info.uid } : {}),
        username: info.username,
      };
    }
  } catch {
    // an old API server or no access to the review: name the context instead
  } finally {
    await client.close();
  }
  return { username: `kubeconfig-context:${contextName}` };
}
