/**
 * Whether an exec or attach session would run next to a credential outside
 * the guard: a container of a pod Chaperone does not guard (no
 * `chaperone.dev/injected=true`) that holds a service-account token. The
 * session's output could carry the token out (`cat`, or `rev`, past any
 * value detector), and with it the agent could reach the API server around
 * the guard. Read from the stored pod, after the ServiceAccount admission
 * plugin added its token volume (a `kube-api-access-*` projected volume, or a
 * `<sa>-token-*` Secret volume on older clusters).
 *
 * Pure: the pod in, the reason (or undefined) out.
 */
import { INJECTED_LABEL } from '@chaperone/shared';
// Where the kubelet mounts a pod's service-account token (client-go's in-cluster config reads it there).
import { IN_CLUSTER_DIR as TOKEN_DIR } from '@chaperone/shared/kube';

/** A legacy token Secret's name: `<service account>-token-<5 characters>`. */
const LEGACY_TOKEN_SECRET = /-token-[a-z0-9]{5}$/;

interface Named {
  readonly name?: unknown;
}

function list<T>(v: unknown): T[] {
  return Array.isArray(v) ? (v.filter((x) => typeof x === 'object' && x !== null) as T[]) : [];
}

/** Why the volume holds a service-account token, if it does. */
function tokenVolume(v: Record<string, unknown> | undefined): string | undefined {
  if (!v) return undefined;
  const projected = v.projected as { sources?: unknown } | undefined;
  if (list<Record<string, unknown>>(projected?.sources).some((s) => s.serviceAccountToken !== undefined))
    return 'a projected service-account token';
  const secret = (v.secret as { secretName?: unknown } | undefined)?.secretName;
  if (typeof secret === 'string' && LEGACY_TOKEN_SECRET.test(secret))
    return `the token Secret ${JSON.stringify(secret)}`;
  return undefined;
}

/** Why `container` of `pod` holds a service-account token outside the guard, or undefined. */
export function tokenOutsideGuard(pod: unknown, container: string): string | undefined {
  const p = pod as { metadata?: { labels?: Record<string, unknown> }; spec?: Record<string, unknown> } | null;
  if (p?.metadata?.labels?.[INJECTED_LABEL] === 'true') return undefined;
  const spec = p?.spec ?? {};
  const c = [
    ...list<Named & { volumeMounts?: unknown }>(spec.containers),
    ...list<Named & { volumeMounts?: unknown }>(spec.initContainers),
    ...list<Named & { volumeMounts?: unknown }>(spec.ephemeralContainers),
  ].find((x) => x.name === container);
  if (!c) return undefined;
  const volumes = new Map(
    list<Named & Record<string, unknown>>(spec.volumes).map((v) => [v.name, v] as const),
  );
  for (const m of list<{ name?: unknown; mountPath?: unknown }>(c.volumeMounts)) {
    const path = typeof m.mountPath === 'string' ? m.mountPath : '';
    const why =
      tokenVolume(volumes.get(m.name)) ??
      (path === TOKEN_DIR || path.startsWith(`${TOKEN_DIR}/`)
        ? 'the service-account token directory'
        : undefined);
    if (why)
      return `the pod is not guarded by Chaperone, and container ${JSON.stringify(container)} holds ${why} (mounted at ${JSON.stringify(path)}), which the session's output could carry out of the guard's custody`;
  }
  return undefined;
}
