/**
 * `chaperone injector` settings: one declarative schema (flags and
 * CHAPERONE_* variables), parsed once in main and passed down frozen.
 */
import {
  boolean,
  type ConfigOf,
  duration,
  integer,
  LOG_LEVELS,
  list,
  oneOf,
  port,
  string,
  url,
} from '@chaperone/shared';
import {
  type InjectionConfig,
  imageRepository,
  PULL_POLICIES,
  SIDECAR_LOG_LEVELS,
  type SidecarMode,
} from '../inject/injection-config.ts';
import { canonicalQuantity } from '../inject/quantity.ts';
import { SYSTEM_NAMESPACES } from '../names.ts';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function quantityField(description: string, def?: string) {
  return string({
    description,
    ...(def === undefined ? {} : { default: def }),
    pattern: /^(\d+(\.\d*)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/,
  });
}

export function injectorSchema(version: string) {
  return {
    // --- webhook server
    listenAddress: string({ description: 'Address the webhook HTTPS server binds', default: '0.0.0.0' }),
    port: port({ description: 'Port of the webhook HTTPS server (also /healthz, /readyz)', default: 8443 }),
    metricsAddress: string({ description: 'Address of the Prometheus metrics server', default: '0.0.0.0' }),
    metricsPort: port({
      description: 'Port of the metrics server (0 picks a free one)',
      default: 9090,
      allowZero: true,
    }),
    maxRequestBytes: integer({
      description: 'Largest AdmissionReview body accepted; larger ones get HTTP 400',
      default: 4 * 1024 * 1024,
      min: 1024,
      max: 64 * 1024 * 1024,
    }),
    shutdownDelay: duration({
      description: 'After SIGTERM, keep serving this long so endpoints can drain before closing',
      default: 5000,
    }),
    logLevel: oneOf(LOG_LEVELS, { description: 'Log level', default: 'info' }),

    // --- identity and cluster access
    namespace: string({
      description: 'The injector’s own namespace (never injected; holds its Lease and TLS Secret)',
      default: 'chaperone-system',
      pattern: DNS_LABEL,
    }),
    revision: string({
      description:
        'Serve only namespaces labelled chaperone.dev/revision=<revision> (canary or side-by-side injectors); names the webhook configuration, Lease and Secret after it',
      pattern: DNS_LABEL,
    }),
    kubeconfig: string({
      description:
        'Kubeconfig to use (default: in-cluster service account, else $KUBECONFIG or ~/.kube/config)',
    }),
    leaderIdentity: string({ description: 'Identity in the Lease (default: hostname and a random suffix)' }),
    leaseDuration: duration({ description: 'Lease duration for leader election', default: 15_000 }),
    leaseRenewInterval: duration({
      description: 'How often the leader renews (and others retry)',
      default: 2_000,
    }),
    leaseRenewDeadline: duration({
      description: 'A leader that could not renew for this long stops acting',
      default: 10_000,
    }),
    resyncInterval: duration({
      description: 'Full reconciliation of the webhook configuration and NetworkPolicies, besides watches',
      default: 300_000,
    }),

    // --- webhook configuration
    manageWebhook: boolean({
      description:
        'Create the Mutating- and ValidatingWebhookConfiguration at start and repair them when they drift',
      default: true,
    }),
    serviceName: string({
      description: 'Service in front of the injector',
      default: 'chaperone-injector',
      pattern: DNS_LABEL,
    }),
    servicePort: port({ description: 'Port of that Service', default: 443 }),
    webhookPath: string({
      description: 'Path the API server posts AdmissionReviews to',
      default: '/mutate',
      pattern: /^\/[\w/.-]*$/,
    }),
    validatingWebhookPath: string({
      description:
        'Path the API server posts validating AdmissionReviews to (with --webhook-url: same scheme, host and port)',
      default: '/validate',
      pattern: /^\/[\w/.-]*$/,
    }),
    webhookUrl: url({
      description: 'Reach the webhook by URL instead of the Service (out-of-cluster injectors)',
      protocols: ['https'],
    }),
    webhookTimeoutSeconds: integer({
      description: 'timeoutSeconds of the webhook (the API server gives up after this)',
      default: 5,
      min: 1,
      max: 30,
    }),

    // --- TLS
    tlsCertFile: string({
      description: 'Serving certificate (PEM) provided from a file, e.g. by cert-manager',
    }),
    tlsKeyFile: string({ description: 'Its private key (PEM)' }),
    tlsCaFile: string({
      description:
        'CA bundle to publish as the webhook caBundle when certificates come from files (else left alone, e.g. for cert-manager’s CA injector)',
    }),
    certReloadInterval: duration({
      description: 'How often certificate files (and --collector-ca-file) are checked for changes',
      default: 10_000,
    }),
    certValidity: duration({
      description: 'Lifetime of self-issued serving certificates',
      default: 7 * 86_400_000,
    }),
    certRenewBefore: duration({
      description:
        'Renew a self-issued certificate this long before it expires (default: the last 10 % of its life)',
    }),
    caValidity: duration({ description: 'Lifetime of the self-managed CA', default: 365 * 86_400_000 }),
    extraDnsNames: list({ description: 'More DNS names for the serving certificate', default: [] }),
    extraIpAddresses: list({ description: 'More IP addresses for the serving certificate', default: [] }),

    // --- NetworkPolicy controller
    networkPolicies: boolean({
      description: 'Keep an egress NetworkPolicy in each opted-in namespace',
      default: true,
    }),
    apiServerEndpoints: list({
      description:
        'API server egress as cidr:port (default: discovered from the default/kubernetes Endpoints)',
      default: [],
    }),
    dnsSelector: string({
      description: 'Label selector of the cluster DNS pods (any namespace) that injected pods may query',
      default: 'k8s-app=kube-dns',
    }),
    dnsCidrs: list({ description: 'Extra DNS servers as CIDRs (node-local DNS caches)', default: [] }),
    collectorNamespace: string({
      description: 'Namespace of the collector (default: the injector’s)',
      pattern: DNS_LABEL,
    }),
    collectorSelector: string({
      description: 'Label selector of the collector pods',
      default: 'app.kubernetes.io/name=chaperone-collector',
    }),
    collectorPort: port({
      description: 'Collector pod port for egress (default: the port of --collector-url)',
    }),
    egressUpstreams: list({
      description: 'Upstreams every opted-in namespace may reach, as cidr:port (databases, model APIs)',
      default: [],
    }),

    // --- what gets injected
    image: string({ description: 'Sidecar image', default: `ghcr.io/chaperone-dev/chaperone:${version}` }),
    imagePullPolicy: oneOf(PULL_POLICIES, {
      description: 'Sidecar imagePullPolicy',
      default: 'IfNotPresent',
    }),
    allowedImages: list({
      description:
        'Repositories a pod’s chaperone.dev/image annotation may name (default: the repository of --image)',
    }),
    sidecarMode: oneOf(['auto', 'native', 'classic'] as const, {
      description:
        'native: init container with restartPolicy Always (Kubernetes >= 1.29); classic: first container; auto: by server version',
      default: 'auto',
    }),
    kubePort: port({ description: 'Sidecar’s local Kubernetes API port', default: 6443 }),
    sidecarMetricsPort: port({ description: 'Sidecar’s metrics and health port', default: 9090 }),
    sidecarLogLevel: oneOf(SIDECAR_LOG_LEVELS, { description: 'Sidecar log level', default: 'info' }),
    cpuRequest: quantityField('Sidecar CPU request', '50m'),
    memoryRequest: quantityField('Sidecar memory request', '64Mi'),
    cpuLimit: quantityField('Sidecar CPU limit (none by default)'),
    memoryLimit: quantityField('Sidecar memory limit', '256Mi'),
    collectorUrl: url({
      description: 'Collector URL given to every sidecar',
      protocols: ['https', 'http', 'wss', 'ws'],
    }),
    collectorCaFile: string({
      description:
        'The collector’s CA bundle (PEM, e.g. the ca.crt of its TLS Secret, mounted): published as the ConfigMap chaperone-collector-ca in every opted-in namespace and mounted into sidecars, which verify the collector with it; re-read when it changes',
    }),
    collectorAudience: string({
      description: 'Audience of the sidecar’s collector token',
      default: 'chaperone-collector',
    }),
    tokenExpiration: duration({
      description: 'Lifetime of the sidecar’s projected tokens',
      default: 3_600_000,
    }),
    postgresPort: port({ description: 'First local port for declared databases', default: 5432 }),
    sidecarUid: integer({
      description: 'UID (and GID) the sidecar runs as',
      default: 65532,
      min: 1,
      max: 2_147_483_647,
    }),
    allowedAgentTokenAudiences: list({
      description: 'Audiences of projected tokens agent containers may keep (never the API server’s)',
      default: [],
    }),
    excludedNamespaces: list({ description: 'More namespaces never injected', default: [] }),

    // --- validation: who may run unguarded pods in opted-in namespaces
    exemptUsers: list({
      description:
        'Users (exact names, as the API server authenticates them) whose requests may create uninjected pods in opted-in namespaces, change an injected pod’s guard or take a namespace out of Chaperone; none by default',
      default: [],
    }),
    exemptGroups: list({
      description: 'Groups with the same exemption as --exempt-users; none by default',
      default: [],
    }),
  } as const;
}

export type InjectorSettings = ConfigOf<ReturnType<typeof injectorSchema>>;

/** `chaperone-injector` or `chaperone-injector-<revision>`: names the webhook configuration, Lease and Secret. */
export function instanceName(settings: Pick<InjectorSettings, 'revision'>): string {
  return settings.revision ? `chaperone-injector-${settings.revision}` : 'chaperone-injector';
}

/** The injection settings, once the cluster's support for native sidecars is known. */
export function injectionConfigFrom(
  s: InjectorSettings,
  version: string,
  nativeSidecarsSupported: boolean,
): InjectionConfig {
  const mode: SidecarMode =
    s.sidecarMode === 'auto' ? (nativeSidecarsSupported ? 'native' : 'classic') : s.sidecarMode;
  // At least 10m: checked with the other settings at start-up (injector-runtime.ts).
  const tokenSeconds = Math.floor(s.tokenExpiration / 1000);
  return Object.freeze({
    version,
    image: s.image,
    imagePullPolicy: s.imagePullPolicy,
    mode,
    nativeSidecarsSupported,
    kubePort: s.kubePort,
    metricsPort: s.sidecarMetricsPort,
    logLevel: s.sidecarLogLevel,
    resources: Object.freeze({
      ...(s.cpuRequest ? { cpuRequest: canonicalQuantity(s.cpuRequest) } : {}),
      ...(s.memoryRequest ? { memoryRequest: canonicalQuantity(s.memoryRequest) } : {}),
      ...(s.cpuLimit ? { cpuLimit: canonicalQuantity(s.cpuLimit) } : {}),
      ...(s.memoryLimit ? { memoryLimit: canonicalQuantity(s.memoryLimit) } : {}),
    }),
    ...(s.collectorUrl ? { collectorUrl: s.collectorUrl } : {}),
    ...(s.collectorUrl && s.collectorCaFile ? { collectorCa: true } : {}),
    tokenExpirationSeconds: tokenSeconds,
    collectorAudience: s.collectorAudience,
    postgresPort: s.postgresPort,
    sidecarUid: s.sidecarUid,
    allowedImages: Object.freeze([...(s.allowedImages ?? [imageRepository(s.image)])]),
    allowedAgentTokenAudiences: Object.freeze([...s.allowedAgentTokenAudiences]),
    excludedNamespaces: Object.freeze([
      ...new Set([...SYSTEM_NAMESPACES, s.namespace, ...s.excludedNamespaces]),
    ]),
    injectorNamespace: s.namespace,
  });
}
