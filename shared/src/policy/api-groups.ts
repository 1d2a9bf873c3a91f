/**
 * Which API groups Kubernetes itself serves, and which groups of other
 * projects hold network policy. Every other group is a custom resource or an
 * aggregated API, whose objects the guard cannot know the meaning of: their
 * writes are checked for pod specs wherever they appear (written-object.ts).
 */

/**
 * Groups served by the API server itself (Kubernetes 1.16 to 1.33), the core
 * group as ''. `*.k8s.io` alone does not make a group built in: projects of
 * the Kubernetes organisation ship CRDs under it (gateway.networking.k8s.io,
 * snapshot.storage.k8s.io, policy.networking.k8s.io).
 */
export const BUILTIN_API_GROUPS: ReadonlySet<string> = new Set([
  '',
  'admissionregistration.k8s.io',
  'apiextensions.k8s.io',
  'apiregistration.k8s.io',
  'apps',
  'authentication.k8s.io',
  'authorization.k8s.io',
  'autoscaling',
  'batch',
  'certificates.k8s.io',
  'coordination.k8s.io',
  'discovery.k8s.io',
  'events.k8s.io',
  'extensions',
  'flowcontrol.apiserver.k8s.io',
  'internal.apiserver.k8s.io',
  'networking.k8s.io',
  'node.k8s.io',
  'policy',
  'rbac.authorization.k8s.io',
  'resource.k8s.io',
  'scheduling.k8s.io',
  'storage.k8s.io',
  'storagemigration.k8s.io',
]);

export function isBuiltinGroup(group: string): boolean {
  return BUILTIN_API_GROUPS.has(group);
}

/**
 * Network policy of CNI plugins and of the network-policy API project, by
 * group (every resource of the group) or by `group/resource`. Each can allow
 * traffic that Chaperone's NetworkPolicy denies (Calico and Antrea policies
 * ordered before Kubernetes NetworkPolicies, AdminNetworkPolicy's Allow,
 * Cilium's and GKE's additive allow rules), or is a deny list an admin set
 * (OVN-Kubernetes EgressFirewall, OpenShift EgressNetworkPolicy) whose
 * removal widens egress.
 */
const NETWORK_POLICY_GROUPS: ReadonlySet<string> = new Set([
  'crd.projectcalico.org',
  'projectcalico.org',
  'cilium.io',
  'crd.antrea.io',
  'policy.networking.k8s.io',
  'k8s.ovn.org',
  'network.openshift.io',
  'kubeovn.io',
]);
const NETWORK_POLICY_RESOURCES: ReadonlySet<string> = new Set(['networking.gke.io/fqdnnetworkpolicies']);

/** Whether `group/resource` is network policy of a CNI plugin or of the network-policy API. */
export function isNetworkPolicyExtension(group: string, resource: string | undefined): boolean {
  return NETWORK_POLICY_GROUPS.has(group) || NETWORK_POLICY_RESOURCES.has(`${group}/${resource ?? ''}`);
}
