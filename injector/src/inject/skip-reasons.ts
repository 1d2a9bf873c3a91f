/**
 * Why a pod was not injected: a closed set of codes, used as metric labels,
 * in logs and by `check-inject` (Linkerd and Istio report skips by reason).
 */
export const SKIP_REASONS = ['excluded_namespace', 'opted_out', 'host_network', 'already_injected'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

export const SKIP_EXPLANATIONS: Readonly<Record<SkipReason, string>> = {
  excluded_namespace:
    'the namespace is a system namespace or the injector’s own, which are never injected whatever their labels say',
  opted_out: 'the pod carries the annotation chaperone.dev/inject: "false"',
  host_network:
    'the pod uses the host’s network namespace (hostNetwork: true): a loopback sidecar would be shared with the node, so it is not injected',
  already_injected: 'the pod already has the sidecar and everything injection would change is in place',
};
