/**
 * Whether an exec or attach session would run next to a credential outside
 * the guard: a container of a pod Chaperone does not guard (no
 * `chaperone.dev/injected=true`) that holds a service-account token. The
 * session's output could carry the token out (`cat`, or `rev`, past any
 * value detector), and with it the agent could reach the API server around
 * the guard. Read from the stored pod, after the ServiceAccount admission
 * plugin added its token volume (a `kube-api-access-*` projected volume, or a
 * `<sa>-token-*` Secret volume on older clusters). A token Secret can have any
 * name (since Kubernetes 1.24 they are made by hand): the caller reads the
 * types of the Secrets the pod uses (secretsUsed) and passes those of type
 * `kubernetes.io/service-account-token`, found in volumes and in the
 * environment (env and envFrom) alike.
 *
 * Pure: the pod and the token Secrets' names in, the reason (or undefined) out.
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

/** The Secrets a volume holds (a secret volume, or secret sources of a projected one). */
function volumeSecrets(v: Record<string, unknown> | undefined): unknown[] {
  if (!v) return [];
  const projected = v.projected as { sources?: unknown } | undefined;
  return [
    (v.secret as { secretName?: unknown } | undefined)?.secretName,
    ...list<Record<string, unknown>>(projected?.sources).map(
      (s) => (s.secret as { name?: unknown } | undefined)?.name,
    ),
  ];
}

/** The Secrets a container's environment takes values from (env valueFrom.secretKeyRef, envFrom secretRef). */
function envSecrets(c: { env?: unknown; envFrom?: unknown }): { name: unknown; env: string }[] {
  return [
    ...list<{ name?: unknown; valueFrom?: { secretKeyRef?: { name?: unknown } } }>(c.env).map((e) => ({
      name: e.valueFrom?.secretKeyRef?.name,
      env: `env ${JSON.stringify(e.name)}`,
    })),
    ...list<{ secretRef?: { name?: unknown } }>(c.envFrom).map((e) => ({
      name: e.secretRef?.name,
      env: 'envFrom',
    })),
  ];
}

/** Why the volume holds a service-account token, if it does. */
function tokenVolume(
  v: Record<string, unknown> | undefined,
  tokens: ReadonlySet<string>,
): string | undefined {
  if (!v) return undefined;
  const projected = v.projected as { sources?: unknown } | undefined;
  const sources = list<Record<string, unknown>>(projected?.sources);
  if (sources.some((s) => s.serviceAccountToken !== undefined)) return 'a projected service-account token';
  const secret = volumeSecrets(v).find(
    (n) => typeof n === 'string' && (tokens.has(n) || LEGACY_TOKEN_SECRET.test(n)),
  );
  return secret === undefined ? undefined : `the token Secret ${JSON.stringify(secret)}`;
}

/**
 * Why `c` reaches what other containers of the pod, or of the node, hold:
 * the pod's shared process namespace (another container's files through
 * /proc/<pid>/root), a volume it shares with a token-holding container that
 * could copy the token into it (an init container writing an emptyDir), or
 * the node's (host PID, a privileged container, a host path: every pod's
 * token on the node).
 */
function reachesBeyond(
  spec: Record<string, unknown>,
  c: Container,
  volumes: ReadonlyMap<unknown, Record<string, unknown>>,
  holders: readonly Container[],
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
    return `the pod's shared process namespace, through which it reads the token container ${JSON.stringify(holders[0]?.name)} holds`;
  const shared = sharedWritable(c, volumes, holders);
  if (shared)
    return `the volume ${JSON.stringify(shared.volume)} it shares with container ${JSON.stringify(shared.holder)}, which holds a token and can copy it there`;
  return undefined;
}

/** Volume kinds the kubelet mounts read-only whatever the mount says (nothing can be written into them). */
const READ_ONLY_KINDS = ['configMap', 'secret', 'projected', 'downwardAPI'];

/** A volume `c` mounts that a token-holding container mounts too, and could write the token into. */
function sharedWritable(
  c: { name?: unknown; volumeMounts?: unknown },
  volumes: ReadonlyMap<unknown, Record<string, unknown>>,
  holders: readonly Container[],
): { volume: string; holder: string } | undefined {
  const mine = new Set(list<{ name?: unknown }>(c.volumeMounts).map((m) => m.name));
  for (const h of holders) {
    if (h.name === c.name) continue;
    for (const m of list<{ name?: unknown; readOnly?: unknown }>(h.volumeMounts)) {
      const v = volumes.get(m.name);
      if (!v || !mine.has(m.name) || m.readOnly === true) continue;
      if (READ_ONLY_KINDS.some((k) => v[k] !== undefined)) continue;
      return { volume: String(m.name), holder: String(h.name) };
    }
  }
  return undefined;
}

/** Why `c` holds a service-account token among its own mounts or in its environment, if it does. */
function ownToken(
  c: Container,
  volumes: ReadonlyMap<unknown, Record<string, unknown>>,
  tokens: ReadonlySet<string>,
): string | undefined {
  const env = envSecrets(c).find((e) => typeof e.name === 'string' && tokens.has(e.name));
  if (env) return `the token Secret ${JSON.stringify(env.name)} in its environment (${env.env})`;
  for (const m of list<{ name?: unknown; mountPath?: unknown }>(c.volumeMounts)) {
    const path = typeof m.mountPath === 'string' ? m.mountPath : '';
    const why =
      tokenVolume(volumes.get(m.name), tokens) ??
      (path === TOKEN_DIR || path.startsWith(`${TOKEN_DIR}/`)
        ? 'the service-account token directory'
        : undefined);
    if (why) return `${why} (mounted at ${JSON.stringify(path)})`;
  }
  return undefined;
}

type Container = Named & {
  volumeMounts?: unknown;
  securityContext?: unknown;
  env?: unknown;
  envFrom?: unknown;
};

type PodShape = { metadata?: { labels?: Record<string, unknown> }; spec?: Record<string, unknown> } | null;

function guarded(p: PodShape): boolean {
  return p?.metadata?.labels?.[INJECTED_LABEL] === 'true';
}

function containersOf(spec: Record<string, unknown>): Container[] {
  return [
    ...list<Container>(spec.containers),
    ...list<Container>(spec.initContainers),
    ...list<Container>(spec.ephemeralContainers),
  ];
}

/**
 * The names of the Secrets the containers of a pod Chaperone does not guard
 * use, in volumes or in their environment: whose types the caller reads
 * before tokenOutsideGuard (none for a guarded pod).
 */
export function secretsUsed(pod: unknown): string[] {
  const p = pod as PodShape;
  if (guarded(p)) return [];
  const spec = p?.spec ?? {};
  const names = [
    ...list<Record<string, unknown>>(spec.volumes).flatMap((v) => volumeSecrets(v)),
    ...containersOf(spec).flatMap((c) => envSecrets(c).map((e) => e.name)),
  ];
  return [...new Set(names.filter((n): n is string => typeof n === 'string' && n !== ''))];
}

/**
 * Why `container` of `pod` holds a service-account token outside the guard,
 * or undefined. `tokens`: the Secrets of the pod's namespace that are
 * service-account tokens (of those secretsUsed names).
 */
export function tokenOutsideGuard(
  pod: unknown,
  container: string,
  tokens: ReadonlySet<string> = new Set(),
): string | undefined {
  const p = pod as PodShape;
  if (guarded(p)) return undefined;
  const spec = p?.spec ?? {};
  const all = containersOf(spec);
  const c = all.find((x) => x.name === container);
  if (!c) return undefined;
  const volumes = new Map(
    list<Named & Record<string, unknown>>(spec.volumes).map((v) => [v.name, v] as const),
  );
  const why =
    ownToken(c, volumes, tokens) ??
    reachesBeyond(
      spec,
      c,
      volumes,
      all.filter((x) => ownToken(x, volumes, tokens) !== undefined),
    );
  return why === undefined
    ? undefined
    : `the pod is not guarded by Chaperone, and container ${JSON.stringify(container)} holds ${why}, which the session's output could carry out of the guard's custody`;
}
