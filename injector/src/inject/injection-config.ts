/**
 * What `mutate` needs to know: the injector's settings for sidecars plus the
 * facts about the cluster (native sidecar support), resolved once at start.
 * Plain data, frozen, serialisable (it is published on the webhook
 * configuration so `check-inject` computes exactly what the injector would).
 */
export const SIDECAR_MODES = ['native', 'classic'] as const;
export type SidecarMode = (typeof SIDECAR_MODES)[number];

export const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;
export type PullPolicy = (typeof PULL_POLICIES)[number];

export const SIDECAR_LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

export interface SidecarResources {
  readonly cpuRequest?: string;
  readonly memoryRequest?: string;
  readonly cpuLimit?: string;
  readonly memoryLimit?: string;
}

export interface InjectionConfig {
  /** Chaperone version, recorded in the status annotation. */
  readonly version: string;
  readonly image: string;
  readonly imagePullPolicy: PullPolicy;
  /** Mode for pods that do not ask for one. */
  readonly mode: SidecarMode;
  /** Whether the API server keeps `restartPolicy: Always` on init containers (Kubernetes >= 1.29). */
  readonly nativeSidecarsSupported: boolean;
  readonly kubePort: number;
  readonly metricsPort: number;
  readonly logLevel: string;
  readonly resources: SidecarResources;
  /** Where the sidecar ships audit events; unset leaves the sidecar's own default. */
  readonly collectorUrl?: string;
  /**
   * Whether sidecars verify the collector against the CA bundle the injector
   * publishes in each opted-in namespace (ConfigMap `chaperone-collector-ca`);
   * else against the CAs Node.js trusts.
   */
  readonly collectorCa?: boolean;
  /** Lifetime of the sidecar's projected tokens (the kubelet refreshes them at 80 %). */
  readonly tokenExpirationSeconds: number;
  readonly collectorAudience: string;
  /** First local port for declared databases (the next ones follow). */
  readonly postgresPort: number;
  /** UID the sidecar runs as: distinct from the agent's, so the agent cannot read its files. */
  readonly sidecarUid: number;
  /** Image override annotations must start with one of these. */
  readonly allowedImages: readonly string[];
  /** Projected token audiences an agent container may keep (tokens the API server rejects). */
  readonly allowedAgentTokenAudiences: readonly string[];
  /** Never injected: system namespaces and the injector's own. */
  readonly excludedNamespaces: readonly string[];
  /** The injector's own namespace: the sidecar refuses every change there. */
  readonly injectorNamespace: string;
}

/** `repo/name:tag` → `repo/name` (digest and tag dropped): the default allow-list for image overrides. */
export function imageRepository(image: string): string {
  const at = image.indexOf('@');
  const noDigest = at === -1 ? image : image.slice(0, at);
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}
