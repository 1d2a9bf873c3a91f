/**
 * Built-in rules that no policy can switch off: an agent may not loosen or
 * blind its own guard, mint a credential the API server accepts, or open a
 * route around the guard. They run before the policy's rules and decide on the
 * request alone; the rules that need the written object are in
 * written-object.ts (the sidecar reads the object and calls them).
 */
import { isNetworkPolicyExtension } from './api-groups.ts';
import type { Action, Decision, SelfProtection } from './types.ts';

const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);
const OBJECT_WRITES = new Set(['create', 'update', 'patch']);
/** The ConfigMap the injector publishes the collector's CA bundle in (injector/src/names.ts). */
const COLLECTOR_CA_CONFIGMAP = 'chaperone-collector-ca';

/**
 * Kinds that start pods from a template, by `group/resource`: their status
 * is the controllers' record of which revision runs (a StatefulSet's
 * currentRevision names the ControllerRevision its pods are made from).
 */
const WORKLOADS = new Set([
  '/replicationcontrollers',
  'apps/deployments',
  'apps/replicasets',
  'apps/statefulsets',
  'apps/daemonsets',
  'extensions/deployments',
  'extensions/replicasets',
  'extensions/daemonsets',
  'batch/jobs',
  'batch/cronjobs',
]);

/**
 * Storage objects that decide what a pod's volume is on the node: a
 * PersistentVolume can be a hostPath, local, NFS, flexVolume or CSI volume
 * of anything; a StorageClass or CSIDriver decides how the kubelet mounts
 * (a CSIDriver's tokenRequests hands pods' tokens to the driver); a
 * VolumeAttachment attaches a volume to a node.
 */
const NODE_STORAGE = new Set([
  '/persistentvolumes',
  'storage.k8s.io/storageclasses',
  'storage.k8s.io/csidrivers',
  'storage.k8s.io/volumeattachments',
]);

function deny(rule: string, message: string): Decision {
  return { action: 'deny', rule, reason: 'self_protection', message };
}

/** The first built-in rule the action breaks, or undefined. */
export function checkSelfProtection(action: Action, protection: SelfProtection): Decision | undefined {
  if (action.impersonation && action.impersonation.length > 0) {
    return deny(
      'chaperone-no-impersonation',
      `impersonation headers (${action.impersonation.join(', ')}) are not allowed through the guard`,
    );
  }
  if (action.protocol === 'postgres') return undefined;

  const group = action.apiGroup ?? '';
  const write = WRITE_VERBS.has(action.verb);

  // The proxy verb (legacy /api/v1/proxy/...) and the proxy subresources of
  // nodes, pods and services reach the kubelet or a workload with the API
  // server's own standing, outside anything the guard can read.
  if (action.verb === 'proxy' || action.subresource === 'proxy') {
    return deny(
      'chaperone-no-proxy',
      `${action.resource ?? 'the'} proxy route is not allowed through the guard: it reaches ${
        action.resource === 'nodes' ? "the kubelet's API" : 'the target'
      } directly, unguarded; call the workload through a Service from inside the cluster instead`,
    );
  }
  if (
    protection.pod !== undefined &&
    group === '' &&
    action.resource === 'pods' &&
    action.namespace === protection.namespace &&
    ((action.verb === 'delete' && action.subresource === undefined && action.name === protection.pod) ||
      (action.verb === 'create' && action.subresource === 'eviction' && action.name === protection.pod) ||
      (action.verb === 'deletecollection' && action.subresource === undefined))
  ) {
    return deny(
      'chaperone-protect-own-pod',
      `deleting or evicting this pod (${protection.pod}) from inside it is not allowed: its audit record would go with it; ask an operator${
        action.verb === 'deletecollection' ? ', or delete the other pods by name' : ''
      }`,
    );
  }
  // Port-forward connects to the pod's loopback, where the sidecar's own listeners are (the
  // Kubernetes API with the pod's credentials, the database guards): into the agent's own pod it
  // would run the guard's traffic round through the API server and the kubelet back into the
  // guard, and it gives the agent nothing it lacks (its own pod's ports are on its localhost).
  if (
    protection.pod !== undefined &&
    group === '' &&
    action.resource === 'pods' &&
    action.subresource === 'portforward' &&
    action.namespace === protection.namespace &&
    action.name === protection.pod
  ) {
    return deny(
      'chaperone-no-port-forward-to-own-pod',
      `port-forward into this pod (${protection.pod}) is not allowed: it reaches the guard's own listeners on the pod's loopback from outside the pod; connect to this pod's own ports on localhost instead`,
    );
  }
  if (action.resource === 'pods' && action.subresource === 'ephemeralcontainers') {
    return deny(
      'chaperone-no-ephemeral-containers',
      'adding ephemeral containers is not allowed: they would run outside the guard',
    );
  }
  if (action.exec && (action.exec.kind === 'exec' || action.exec.kind === 'attach')) {
    if (action.exec.container === protection.sidecarContainer) {
      return deny(
        'chaperone-no-exec-into-sidecar',
        `${action.exec.kind} into the ${protection.sidecarContainer} container is not allowed`,
      );
    }
  }
  if (group === '' && action.resource === 'serviceaccounts' && action.subresource === 'token') {
    return deny(
      'chaperone-no-token-request',
      'requesting service-account tokens (TokenRequest, kubectl create token) is not allowed: a token would be a credential outside the guard; call the API through this sidecar instead',
    );
  }
  if (
    group === 'certificates.k8s.io' &&
    action.resource === 'certificatesigningrequests' &&
    (action.verb === 'create' || action.verb === 'update' || action.verb === 'patch')
  ) {
    return deny(
      'chaperone-no-certificate-requests',
      action.subresource
        ? `changing the ${action.subresource} of a CertificateSigningRequest is not allowed: an issued client certificate is a credential outside the guard`
        : 'creating or changing CertificateSigningRequests is not allowed: an issued client certificate is a credential outside the guard',
    );
  }
  if (!write) return undefined;

  const kind = `${group}/${action.resource ?? ''}`;
  if (group === 'apps' && action.resource === 'controllerrevisions') {
    return deny(
      'chaperone-no-controller-revisions',
      'ControllerRevisions cannot be written from inside the guard: StatefulSets and DaemonSets start pods from the template a revision holds, which the guard never reads; change the workload itself and its controller records the revision',
    );
  }
  if (action.subresource === 'status' && WORKLOADS.has(kind)) {
    return deny(
      'chaperone-no-workload-status',
      `writing the status of ${action.resource} is not allowed from inside the guard: the status is the controller's record of which revision its pods are made from; change the workload's spec instead`,
    );
  }
  if (isNetworkPolicyExtension(group, action.resource)) {
    return deny(
      'chaperone-no-network-policy-extensions',
      `${action.resource ?? 'objects'}.${group} is network policy of a network plugin, which can allow traffic Chaperone's NetworkPolicy denies (or is a deny list whose change widens egress): it cannot be written from inside the guard; ask a cluster admin`,
    );
  }
  if (group === '' && action.resource === 'nodes') {
    return deny(
      'chaperone-no-node-writes',
      `${action.subresource ? `writing a node's ${action.subresource}` : 'creating, changing or deleting nodes'} is not allowed from inside the guard: taints can evict the guard's own pods, a node's status names the kubelet endpoint the API server connects to, and its config source reconfigures the kubelet`,
    );
  }
  if (NODE_STORAGE.has(kind) && OBJECT_WRITES.has(action.verb)) {
    return deny(
      'chaperone-no-node-storage',
      `${action.resource} cannot be created or changed from inside the guard: they decide what a pod's volume is on the node (a host directory, a local disk, NFS, a flex or CSI driver); claim storage with a PersistentVolumeClaim of an existing StorageClass`,
    );
  }
  if (group === 'settings.k8s.io' && action.resource === 'podpresets' && OBJECT_WRITES.has(action.verb)) {
    return deny(
      'chaperone-no-pod-presets',
      'PodPresets add volumes and environment to pods at admission, outside anything the guard reads: they cannot be written from inside the guard',
    );
  }

  if (
    group === '' &&
    action.resource === 'namespaces' &&
    !(action.verb === 'create' && action.subresource === undefined)
  ) {
    return deny(
      'chaperone-protect-namespaces',
      action.subresource
        ? `writing a namespace's ${action.subresource} is not allowed: it can change the namespace's labels (chaperone.dev/inject) or its lifecycle`
        : 'changing or deleting namespaces is not allowed: it could remove the chaperone.dev/inject label',
    );
  }
  if (protection.injectorNamespace !== undefined && action.namespace === protection.injectorNamespace) {
    return deny(
      'chaperone-protect-injector',
      `nothing in the injector's namespace ${protection.injectorNamespace} may be changed from inside the guard`,
    );
  }
  if (
    group === '' &&
    action.resource === 'configmaps' &&
    (protection.namespace === undefined || action.namespace === protection.namespace) &&
    (action.verb === 'deletecollection' ||
      (action.name !== undefined && protection.policyConfigMaps.includes(action.name)))
  ) {
    return deny(
      'chaperone-protect-policy',
      'the guardrail policy ConfigMap cannot be changed from inside the guard',
    );
  }
  // The collector's CA bundle, which the injector publishes in every opted-in namespace:
  // sidecars verify the collector with it, so whoever could change it could stand in for the
  // collector and swallow audit events. In any namespace (an agent's rights may reach others);
  // deleting a namespace's collection would take it too (the API server serves ConfigMap
  // collections for deletion only per namespace).
  if (
    group === '' &&
    action.resource === 'configmaps' &&
    ((action.verb === 'deletecollection' && action.namespace !== undefined) ||
      action.name === COLLECTOR_CA_CONFIGMAP)
  ) {
    return deny(
      'chaperone-protect-collector-ca',
      `the collector's CA bundle (ConfigMap ${COLLECTOR_CA_CONFIGMAP}) cannot be changed from inside the guard: sidecars verify the collector with it`,
    );
  }
  if (
    (group === 'networking.k8s.io' || group === 'extensions') &&
    action.resource === 'networkpolicies' &&
    (action.verb === 'deletecollection' || action.name === undefined || action.name.startsWith('chaperone'))
  ) {
    return deny(
      'chaperone-protect-network-policy',
      "Chaperone's NetworkPolicies cannot be changed from inside the guard",
    );
  }
  if (group === 'admissionregistration.k8s.io') {
    return deny(
      'chaperone-protect-webhooks',
      'admission configuration (webhooks, admission policies) cannot be changed from inside the guard: it decides whether pods are guarded',
    );
  }
  if (group === 'apiregistration.k8s.io' && action.resource === 'apiservices') {
    return deny(
      'chaperone-protect-apiservices',
      'APIServices cannot be changed from inside the guard: they decide which server answers an API group',
    );
  }
  return undefined;
}
