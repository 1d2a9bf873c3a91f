/**
 * Every name the injector puts into a pod or the cluster, in one place: the
 * sidecar (written in parallel) and the tests depend on these exact strings.
 */

/** Namespace label that opts a namespace in. */
export const INJECT_LABEL = 'chaperone.dev/inject';
export const INJECT_ENABLED = 'enabled';
/**
 * Opt-out: the pod *label* `chaperone.dev/inject=false` is matched by the
 * mutating webhook's objectSelector (it is not even called); the pod
 * *annotation* `chaperone.dev/inject: "false"` is honoured by the mutating
 * webhook (objectSelectors can only see labels). In an opted-in namespace the
 * validating webhook then refuses either unless the requester is exempt.
 */
export const OPT_OUT_VALUE = 'false';
/** Namespace (and pod) label naming the injector revision that serves it, as Istio's `istio.io/rev`. */
export const REVISION_LABEL = 'chaperone.dev/revision';
export const INJECTED_LABEL = 'chaperone.dev/injected';
export const STATUS_ANNOTATION = 'chaperone.dev/status';
export const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';
/** Annotation on the MutatingWebhookConfiguration: the injection settings, for `check-inject`. */
export const INJECTOR_CONFIG_ANNOTATION = 'chaperone.dev/injection-config';
/** Namespace annotation: extra egress upstreams for that namespace's NetworkPolicy. */
export const EGRESS_ANNOTATION = 'chaperone.dev/egress';
export const ANNOTATION_PREFIX = 'chaperone.dev/';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'chaperone-injector';

export const SIDECAR_NAME = 'chaperone-sidecar';

/** Volumes the injector adds. */
export const AGENT_SA_VOLUME = 'chaperone-agent-sa';
export const TOKEN_VOLUME = 'chaperone-token';
export const SPOOL_VOLUME = 'chaperone-spool';
export const POLICY_VOLUME = 'chaperone-policy';
export const DATABASE_VOLUME_PREFIX = 'chaperone-db-';
export const COLLECTOR_CA_VOLUME = 'chaperone-collector-ca';

/** Paths. */
export const SERVICE_ACCOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
export const SIDECAR_AGENT_SA_PATH = '/var/run/chaperone/agent-sa';
export const SIDECAR_TOKEN_PATH = '/var/run/chaperone/serviceaccount';
export const SIDECAR_SPOOL_PATH = '/var/run/chaperone/spool';
export const SIDECAR_POLICY_PATH = '/etc/chaperone/policy';
export const SIDECAR_DATABASES_PATH = '/var/run/chaperone/databases';
export const SIDECAR_COLLECTOR_CA_PATH = '/var/run/chaperone/collector-ca';
export const POLICY_CONFIGMAP = 'chaperone-policy';
export const POLICY_FILE = `${SIDECAR_POLICY_PATH}/policy.yaml`;

/** The kube-root-ca.crt ConfigMap every namespace gets (RootCAConfigMap, on by default since 1.20). */
export const ROOT_CA_CONFIGMAP = 'kube-root-ca.crt';

export const NETWORK_POLICY_NAME = 'chaperone-egress';

/**
 * The collector's CA bundle, published by the injector in every opted-in
 * namespace (key `ca.crt`) and mounted into the sidecar only; the sidecar's
 * built-in self-protection refuses writes to it (shared/src/policy/self-protection.ts).
 */
export const COLLECTOR_CA_CONFIGMAP = 'chaperone-collector-ca';
export const COLLECTOR_CA_KEY = 'ca.crt';

/** Namespaces the injector never touches, whatever their labels say. */
export const SYSTEM_NAMESPACES: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease'];
