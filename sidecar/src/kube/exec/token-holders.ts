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
  const sources = list<Record<string, unknown>>(projected?.sources);
  if (sources.some((s) => s.serviceAccountToken !== undefined)) return 'a projected service-account token';
  const secrets = [
    (v.secret as { secretName?: unknown } | undefined)?.secretName,
    ...sources.map((s) => (s.secret as { name?: unknown } | undefined)?.name),
  ];
  const secret = secrets.find((n) => typeof n === 'string' && LEGACY_TOKEN_SECRET.test(n));
  return secret === undefined ? undefined : `the token Secret ${JSON.stringify(secret)}`;
}

/**
 * Why `c` reaches what other containers of the pod, or of the node, hold:
 * the pod's shared process namespace (another container's files through
 * /proc/<pid>/root), or the node's (host PID, a privileged container, a host
 * path: every pod's token on the node).
 */
function reachesBeyond(
  spec: Record<string, unknown>,
  c: { securityContext?: unknown; volumeMounts?: unknown },
  volumes: ReadonlyMap<unknown, Record<string, unknown>>,
  holders: readonly string[],
): string | undefined {
  if (spec.hostPID === true)
    return 'the node’s processes (hostPID), and through them every pod’s token there';
  if ((c.securityContext as { privileged?: unknown } | undefined)?.privileged === true)
    return 'a privileged container, which reaches every pod’s token on the node';
  const host = list<{ name?: unknown }>(c.volumeMounts).find(
    (m) => volumes.get(m.name)?.hostPath !== undefined,
  );
  if (host)
    return `the node's files (host path volume ${JSON.stringify(host.name)}), every pod's token there among them`;
  if (spec.shareProcessNamespace === true && holders.length > 0)
    return `the pod's shared process namespace, through which it reads the token container ${JSON.stringify(holders[0])} holds`;
  return undefined;
}

/** Why `c` holds a service-account token among its own mounts, if it does. */
function ownToken(
  c: { volumeMounts?: unknown },
  volumes: ReadonlyMap<unknown, Record<string, unknown>>,
): string | undefined {
  for (const m of list<{ name?: unknown; mountPath?: unknown }>(c.volumeMounts)) {
    const path = typeof m.mountPath === 'string' ? m.mountPath : '';
    const why =
      tokenVolume(volumes.get(m.name)) ??
      (path === TOKEN_DIR || path.startsWith(`${TOKEN_DIR}/`)
        ? 'the service-account token directory'
        : undefined);
    if (why) return `${why} (mounted at ${JSON.stringify(path)})`;
  }
  return undefined;
}

type Container = Named & { volumeMounts?: unknown; securityContext?: unknown };

/** Why `container` of `pod` holds a service-account token outside the guard, or undefined. */
export function tokenOutsideGuard(pod: unknown, container: string): string | undefined {
  const p = pod as { metadata?: { labels?: Record<string, unknown> }; spec?: Record<string, unknown> } | null;
  if (p?.metadata?.labels?.[INJECTED_LABEL] === 'true') return undefined;
  const spec = p?.spec ?? {};
  const all = [
    ...list<Container>(spec.containers),
    ...list<Container>(spec.initContainers),
    ...list<Container>(spec.ephemeralContainers),
  ];
  const c = all.find((x) => x.name === container);
  if (!c) return undefined;
  const volumes = new Map(
    list<Named & Record<string, unknown>>(spec.volumes).map((v) => [v.name, v] as const),
  );
  const why =
    ownToken(c, volumes) ??
    reachesBeyond(
      spec,
      c,
      volumes,
      all.filter((x) => ownToken(x, volumes) !== undefined).map((x) => String(x.name)),
    );
  return why === undefined
    ? undefined
    : `the pod is not guarded by Chaperone, and container ${JSON.stringify(container)} holds ${why}, which the session's output could carry out of the guard's custody`;
}
