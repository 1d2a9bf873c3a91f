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
 * environment (env and envFrom) alike. A container also counts as holding a
 * token when it reaches the node (host PID, privileged, a node-reaching
 * capability, a Windows host process, a host path), or when another
 * container of its pod does either: containers of a pod share memory, the
 * network and volumes (and, with a shared process namespace or a debug
 * container's target, processes). A pod counts as guarded only when it is
 * labelled injected and a Chaperone sidecar is in it.
 *
 * Pure: the pod and the token Secrets' names in, the reason (or undefined) out.
 */
import { INJECTED_LABEL, NODE_REACHING_CAPABILITIES } from '@chaperone/shared';
// Where the kubelet mounts a pod's service-account token (client-go's in-cluster config reads it there).
import { IN_CLUSTER_DIR as TOKEN_DIR } from '@chaperone/shared/kube';
import { podSidecars } from './sidecar-containers.ts';

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
 * Why `c` reaches the node (every pod's token there): the node's processes
 * (host PID), a privileged container, a Windows host process, a capability
 * that reaches the node's files or processes, or a host path volume.
 */
function reachesNode(
  spec: Record<string, unknown>,
  c: Container,
  volumes: ReadonlyMap<unknown, Record<string, unknown>>,
): string | undefined {
  if (spec.hostPID === true)
    return 'the node’s processes (hostPID), and through them every pod’s token there';
  const sc = (c.securityContext ?? {}) as {
    privileged?: unknown;
    windowsOptions?: { hostProcess?: unknown };
    capabilities?: { add?: unknown };
  };
  if (sc.privileged === true) return 'a privileged container, which reaches every pod’s token on the node';
  if (sc.windowsOptions?.hostProcess === true)
    return 'a Windows host process, which reaches every pod’s token on the node';
  const cap = (Array.isArray(sc.capabilities?.add) ? sc.capabilities.add : [])
    .map((x) => String(x).toUpperCase().replace(/^CAP_/, ''))
    .find((x) => NODE_REACHING_CAPABILITIES.has(x));
  if (cap !== undefined)
    return `the capability ${cap}, which reaches the node's files or processes, every pod's token among them`;
  const host = list<{ name?: unknown }>(c.volumeMounts).find(
    (m) => volumes.get(m.name)?.hostPath !== undefined,
  );
  if (host)
    return `the node's files (host path volume ${JSON.stringify(host.name)}), every pod's token there among them`;
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

/** Guarded: labelled as injected, and a Chaperone sidecar is there (outside opted-in namespaces anyone may set the label). */
function guarded(p: PodShape): boolean {
  return p?.metadata?.labels?.[INJECTED_LABEL] === 'true' && podSidecars(p).containers.size > 0;
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
  // Containers of a pod share memory (/dev/shm), the network (localhost) and may share volumes and processes:
  // a token any of them holds, or can reach through the node, is within reach of every other.
  const other = all.find(
    (x) =>
      x.name !== container && (ownToken(x, volumes, tokens) ?? reachesNode(spec, x, volumes)) !== undefined,
  );
  const why =
    ownToken(c, volumes, tokens) ??
    reachesNode(spec, c, volumes) ??
    (other
      ? `what container ${JSON.stringify(other.name)} of the same pod can hand it (a token: containers of a pod share memory, the network and volumes${spec.shareProcessNamespace === true ? ', and here their processes' : ''})`
      : undefined);
  return why === undefined
    ? undefined
    : `the pod is not guarded by Chaperone, and container ${JSON.stringify(container)} holds ${why}, which the session's output could carry out of the guard's custody`;
}
