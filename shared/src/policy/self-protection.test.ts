// The built-in rules that decide on the request alone, as a table, each run
// against a policy that allows everything: no policy can switch them off.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluate } from './evaluate.ts';
import { parsePolicy } from './parse.ts';
import type { Action, SelfProtection } from './types.ts';

const protection: SelfProtection = {
  namespace: 'agents',
  policyConfigMaps: ['chaperone-policy'],
  sidecarContainer: 'chaperone-sidecar',
  injectorNamespace: 'chaperone-system',
  pod: 'agent-0',
};

const allowAll = parsePolicy({
  apiVersion: 'chaperone.dev/v1alpha1',
  kind: 'GuardrailPolicy',
  metadata: { name: 'yolo' },
  spec: { defaultAction: 'allow', rules: [{ name: 'everything', match: {}, action: 'allow' }] },
});

const denySecrets = parsePolicy({
  apiVersion: 'chaperone.dev/v1alpha1',
  kind: 'GuardrailPolicy',
  metadata: { name: 'no-secrets' },
  spec: {
    defaultAction: 'allow',
    rules: [
      { name: 'no-secrets', match: { resources: ['secrets'] }, action: 'deny' },
      { name: 'mask-cm', match: { resources: ['configmaps'] }, action: 'mask', mask: { fields: ['data'] } },
    ],
  },
});

const k = (a: Partial<Action>): Action => ({ protocol: 'kubernetes', verb: 'get', apiGroup: '', ...a });

// [case, action, expected decision, expected rule]
const table: [string, Action, string, string][] = [
  [
    'TokenRequest for any service account',
    k({ verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace: 'x', name: 'default' }),
    'deny',
    'chaperone-no-token-request',
  ],
  [
    'TokenRequest in the agent namespace',
    k({
      verb: 'create',
      resource: 'serviceaccounts',
      subresource: 'token',
      namespace: 'agents',
      name: 'agent',
    }),
    'deny',
    'chaperone-no-token-request',
  ],
  [
    'creating a ServiceAccount is not minting',
    k({ verb: 'create', resource: 'serviceaccounts', namespace: 'agents' }),
    'allow',
    'everything',
  ],
  [
    'CSR create',
    k({ verb: 'create', apiGroup: 'certificates.k8s.io', resource: 'certificatesigningrequests' }),
    'deny',
    'chaperone-no-certificate-requests',
  ],
  [
    'CSR approval',
    k({
      verb: 'update',
      apiGroup: 'certificates.k8s.io',
      resource: 'certificatesigningrequests',
      name: 'c',
      subresource: 'approval',
    }),
    'deny',
    'chaperone-no-certificate-requests',
  ],
  [
    'CSR status patch',
    k({
      verb: 'patch',
      apiGroup: 'certificates.k8s.io',
      resource: 'certificatesigningrequests',
      name: 'c',
      subresource: 'status',
    }),
    'deny',
    'chaperone-no-certificate-requests',
  ],
  [
    'CSR read',
    k({ verb: 'list', apiGroup: 'certificates.k8s.io', resource: 'certificatesigningrequests' }),
    'allow',
    'everything',
  ],
  ['nodes proxy', k({ resource: 'nodes', name: 'n1', subresource: 'proxy' }), 'deny', 'chaperone-no-proxy'],
  [
    'pods proxy POST',
    k({ verb: 'create', resource: 'pods', namespace: 'agents', name: 'p', subresource: 'proxy' }),
    'deny',
    'chaperone-no-proxy',
  ],
  [
    'services proxy',
    k({ resource: 'services', namespace: 'default', name: 'kubernetes', subresource: 'proxy' }),
    'deny',
    'chaperone-no-proxy',
  ],
  ['legacy proxy verb', k({ verb: 'proxy', resource: 'nodes', name: 'n1' }), 'deny', 'chaperone-no-proxy'],
  [
    'namespace status patch',
    k({ verb: 'patch', resource: 'namespaces', name: 'agents', namespace: 'agents', subresource: 'status' }),
    'deny',
    'chaperone-protect-namespaces',
  ],
  [
    'namespace finalize',
    k({
      verb: 'update',
      resource: 'namespaces',
      name: 'agents',
      namespace: 'agents',
      subresource: 'finalize',
    }),
    'deny',
    'chaperone-protect-namespaces',
  ],
  ['namespace read', k({ resource: 'namespaces', name: 'agents' }), 'allow', 'everything'],
  [
    'validating webhook',
    k({
      verb: 'create',
      apiGroup: 'admissionregistration.k8s.io',
      resource: 'validatingwebhookconfigurations',
    }),
    'deny',
    'chaperone-protect-webhooks',
  ],
  [
    'mutating webhook patch',
    k({
      verb: 'patch',
      apiGroup: 'admissionregistration.k8s.io',
      resource: 'mutatingwebhookconfigurations',
      name: 'chaperone-injector',
    }),
    'deny',
    'chaperone-protect-webhooks',
  ],
  [
    'admission policy',
    k({ verb: 'create', apiGroup: 'admissionregistration.k8s.io', resource: 'validatingadmissionpolicies' }),
    'deny',
    'chaperone-protect-webhooks',
  ],
  [
    'webhook read',
    k({ verb: 'list', apiGroup: 'admissionregistration.k8s.io', resource: 'mutatingwebhookconfigurations' }),
    'allow',
    'everything',
  ],
  [
    'APIService',
    k({ verb: 'create', apiGroup: 'apiregistration.k8s.io', resource: 'apiservices' }),
    'deny',
    'chaperone-protect-apiservices',
  ],
  [
    "a Deployment in the injector's namespace",
    k({ verb: 'patch', apiGroup: 'apps', resource: 'deployments', namespace: 'chaperone-system', name: 'x' }),
    'deny',
    'chaperone-protect-injector',
  ],
  [
    "a Lease in the injector's namespace",
    k({ verb: 'update', apiGroup: 'coordination.k8s.io', resource: 'leases', namespace: 'chaperone-system' }),
    'deny',
    'chaperone-protect-injector',
  ],
  [
    "the injector's namespace itself",
    k({ verb: 'delete', resource: 'namespaces', name: 'chaperone-system', namespace: 'chaperone-system' }),
    'deny',
    'chaperone-protect-namespaces',
  ],
  [
    "reading in the injector's namespace",
    k({ verb: 'list', resource: 'pods', namespace: 'chaperone-system' }),
    'allow',
    'everything',
  ],
  // Fails when chaperone-protect-collector-ca goes: a CA of the agent's choosing would let
  // it stand in for the collector.
  [
    "replacing the collector's CA bundle",
    k({ verb: 'update', resource: 'configmaps', namespace: 'agents', name: 'chaperone-collector-ca' }),
    'deny',
    'chaperone-protect-collector-ca',
  ],
  [
    "deleting the collector's CA bundle in another namespace",
    k({ verb: 'delete', resource: 'configmaps', namespace: 'other-agents', name: 'chaperone-collector-ca' }),
    'deny',
    'chaperone-protect-collector-ca',
  ],
  [
    "creating the collector's CA bundle before a namespace opts in",
    k({ verb: 'create', resource: 'configmaps', namespace: 'staging', name: 'chaperone-collector-ca' }),
    'deny',
    'chaperone-protect-collector-ca',
  ],
  [
    'deleting every ConfigMap of another namespace',
    k({ verb: 'deletecollection', resource: 'configmaps', namespace: 'other-agents' }),
    'deny',
    'chaperone-protect-collector-ca',
  ],
  [
    "reading the collector's CA bundle",
    k({ verb: 'get', resource: 'configmaps', namespace: 'agents', name: 'chaperone-collector-ca' }),
    'allow',
    'everything',
  ],
  [
    'changing an ordinary ConfigMap',
    k({ verb: 'patch', resource: 'configmaps', namespace: 'agents', name: 'app-settings' }),
    'allow',
    'everything',
  ],
  [
    "deleting Chaperone's NetworkPolicy",
    k({
      verb: 'delete',
      apiGroup: 'networking.k8s.io',
      resource: 'networkpolicies',
      namespace: 'agents',
      name: 'chaperone-egress',
    }),
    'deny',
    'chaperone-protect-network-policy',
  ],
  [
    'deleting another NetworkPolicy narrows nothing',
    k({
      verb: 'delete',
      apiGroup: 'networking.k8s.io',
      resource: 'networkpolicies',
      namespace: 'agents',
      name: 'other',
    }),
    'allow',
    'everything',
  ],
  [
    'ephemeral containers',
    k({
      verb: 'patch',
      resource: 'pods',
      subresource: 'ephemeralcontainers',
      namespace: 'agents',
      name: 'p',
    }),
    'deny',
    'chaperone-no-ephemeral-containers',
  ],
  [
    'reading a Secret is masked',
    k({ resource: 'secrets', namespace: 'agents', name: 's' }),
    'mask',
    'chaperone-mask-secrets',
  ],
  ['listing Secrets is masked', k({ verb: 'list', resource: 'secrets' }), 'mask', 'chaperone-mask-secrets'],
  ['watching Secrets is masked', k({ verb: 'watch', resource: 'secrets' }), 'mask', 'chaperone-mask-secrets'],
  [
    'the object a Secret patch returns is masked',
    k({ verb: 'patch', resource: 'secrets', namespace: 'agents', name: 's' }),
    'mask',
    'chaperone-mask-secrets',
  ],
  [
    'a deleted Secret returned is masked',
    k({ verb: 'delete', resource: 'secrets', namespace: 'agents', name: 's' }),
    'mask',
    'chaperone-mask-secrets',
  ],
  [
    'a Secret-named resource of another group is not a Secret',
    k({ apiGroup: 'example.com', resource: 'secrets' }),
    'allow',
    'everything',
  ],
  [
    'creating a ControllerRevision',
    k({ verb: 'create', apiGroup: 'apps', resource: 'controllerrevisions', namespace: 'x' }),
    'deny',
    'chaperone-no-controller-revisions',
  ],
  [
    'deleting a ControllerRevision',
    k({ verb: 'delete', apiGroup: 'apps', resource: 'controllerrevisions', namespace: 'x', name: 'r' }),
    'deny',
    'chaperone-no-controller-revisions',
  ],
  [
    'reading ControllerRevisions (rollout history)',
    k({ verb: 'list', apiGroup: 'apps', resource: 'controllerrevisions', namespace: 'x' }),
    'allow',
    'everything',
  ],
  [
    'patching apps/statefulsets/status',
    k({
      verb: 'patch',
      apiGroup: 'apps',
      resource: 'statefulsets',
      subresource: 'status',
      namespace: 'x',
      name: 'w',
    }),
    'deny',
    'chaperone-no-workload-status',
  ],
  [
    'patching apps/deployments/status',
    k({
      verb: 'patch',
      apiGroup: 'apps',
      resource: 'deployments',
      subresource: 'status',
      namespace: 'x',
      name: 'w',
    }),
    'deny',
    'chaperone-no-workload-status',
  ],
  [
    'patching apps/replicasets/status',
    k({
      verb: 'patch',
      apiGroup: 'apps',
      resource: 'replicasets',
      subresource: 'status',
      namespace: 'x',
      name: 'w',
    }),
    'deny',
    'chaperone-no-workload-status',
  ],
  [
    'patching apps/daemonsets/status',
    k({
      verb: 'patch',
      apiGroup: 'apps',
      resource: 'daemonsets',
      subresource: 'status',
      namespace: 'x',
      name: 'w',
    }),
    'deny',
    'chaperone-no-workload-status',
  ],
  [
    'patching extensions/deployments/status',
    k({
      verb: 'patch',
      apiGroup: 'extensions',
      resource: 'deployments',
      subresource: 'status',
      namespace: 'x',
      name: 'w',
    }),
    'deny',
    'chaperone-no-workload-status',
  ],
  [
    'patching batch/jobs/status',
    k({
      verb: 'patch',
      apiGroup: 'batch',
      resource: 'jobs',
      subresource: 'status',
      namespace: 'x',
      name: 'w',
    }),
    'deny',
    'chaperone-no-workload-status',
  ],
  [
    'patching batch/cronjobs/status',
    k({
      verb: 'patch',
      apiGroup: 'batch',
      resource: 'cronjobs',
      subresource: 'status',
      namespace: 'x',
      name: 'w',
    }),
    'deny',
    'chaperone-no-workload-status',
  ],
  [
    'patching /replicationcontrollers/status',
    k({
      verb: 'patch',
      apiGroup: '',
      resource: 'replicationcontrollers',
      subresource: 'status',
      namespace: 'x',
      name: 'w',
    }),
    'deny',
    'chaperone-no-workload-status',
  ],
  [
    'updating statefulsets/status',
    k({
      verb: 'update',
      apiGroup: 'apps',
      resource: 'statefulsets',
      subresource: 'status',
      namespace: 'x',
      name: 'w',
    }),
    'deny',
    'chaperone-no-workload-status',
  ],
  [
    'reading a Deployment status',
    k({
      verb: 'get',
      apiGroup: 'apps',
      resource: 'deployments',
      subresource: 'status',
      namespace: 'x',
      name: 'w',
    }),
    'allow',
    'everything',
  ],
  [
    'scaling a StatefulSet',
    k({
      verb: 'patch',
      apiGroup: 'apps',
      resource: 'statefulsets',
      subresource: 'scale',
      namespace: 'x',
      name: 'w',
    }),
    'allow',
    'everything',
  ],
  [
    'creating globalnetworkpolicies.crd.projectcalico.org',
    k({
      verb: 'create',
      apiGroup: 'crd.projectcalico.org',
      resource: 'globalnetworkpolicies',
      namespace: 'x',
    }),
    'deny',
    'chaperone-no-network-policy-extensions',
  ],
  [
    'creating networkpolicies.projectcalico.org',
    k({ verb: 'create', apiGroup: 'projectcalico.org', resource: 'networkpolicies', namespace: 'x' }),
    'deny',
    'chaperone-no-network-policy-extensions',
  ],
  [
    'creating ciliumnetworkpolicies.cilium.io',
    k({ verb: 'create', apiGroup: 'cilium.io', resource: 'ciliumnetworkpolicies', namespace: 'x' }),
    'deny',
    'chaperone-no-network-policy-extensions',
  ],
  [
    'creating ciliumclusterwidenetworkpolicies.cilium.io',
    k({
      verb: 'create',
      apiGroup: 'cilium.io',
      resource: 'ciliumclusterwidenetworkpolicies',
      namespace: 'x',
    }),
    'deny',
    'chaperone-no-network-policy-extensions',
  ],
  [
    'creating clusternetworkpolicies.crd.antrea.io',
    k({ verb: 'create', apiGroup: 'crd.antrea.io', resource: 'clusternetworkpolicies', namespace: 'x' }),
    'deny',
    'chaperone-no-network-policy-extensions',
  ],
  [
    'creating adminnetworkpolicies.policy.networking.k8s.io',
    k({
      verb: 'create',
      apiGroup: 'policy.networking.k8s.io',
      resource: 'adminnetworkpolicies',
      namespace: 'x',
    }),
    'deny',
    'chaperone-no-network-policy-extensions',
  ],
  [
    'creating egressfirewalls.k8s.ovn.org',
    k({ verb: 'create', apiGroup: 'k8s.ovn.org', resource: 'egressfirewalls', namespace: 'x' }),
    'deny',
    'chaperone-no-network-policy-extensions',
  ],
  [
    'creating egressnetworkpolicies.network.openshift.io',
    k({
      verb: 'create',
      apiGroup: 'network.openshift.io',
      resource: 'egressnetworkpolicies',
      namespace: 'x',
    }),
    'deny',
    'chaperone-no-network-policy-extensions',
  ],
  [
    'creating fqdnnetworkpolicies.networking.gke.io',
    k({ verb: 'create', apiGroup: 'networking.gke.io', resource: 'fqdnnetworkpolicies', namespace: 'x' }),
    'deny',
    'chaperone-no-network-policy-extensions',
  ],
  [
    'deleting a Calico policy',
    k({
      verb: 'delete',
      apiGroup: 'crd.projectcalico.org',
      resource: 'networkpolicies',
      namespace: 'x',
      name: 'deny-all',
    }),
    'deny',
    'chaperone-no-network-policy-extensions',
  ],
  [
    'reading Cilium policies',
    k({ verb: 'list', apiGroup: 'cilium.io', resource: 'ciliumnetworkpolicies', namespace: 'x' }),
    'allow',
    'everything',
  ],
  [
    'other GKE networking objects',
    k({ verb: 'create', apiGroup: 'networking.gke.io', resource: 'managedcertificates', namespace: 'x' }),
    'allow',
    'everything',
  ],
  ['patch nodes', k({ verb: 'patch', resource: 'nodes', name: 'n1' }), 'deny', 'chaperone-no-node-writes'],
  ['update nodes', k({ verb: 'update', resource: 'nodes', name: 'n1' }), 'deny', 'chaperone-no-node-writes'],
  ['delete nodes', k({ verb: 'delete', resource: 'nodes', name: 'n1' }), 'deny', 'chaperone-no-node-writes'],
  ['create nodes', k({ verb: 'create', resource: 'nodes', name: 'n1' }), 'deny', 'chaperone-no-node-writes'],
  [
    'patch nodes/status',
    k({ verb: 'patch', resource: 'nodes', name: 'n1', subresource: 'status' }),
    'deny',
    'chaperone-no-node-writes',
  ],
  [
    'update nodes/status',
    k({ verb: 'update', resource: 'nodes', name: 'n1', subresource: 'status' }),
    'deny',
    'chaperone-no-node-writes',
  ],
  [
    'deletecollection nodes',
    k({ verb: 'deletecollection', resource: 'nodes', name: 'n1' }),
    'deny',
    'chaperone-no-node-writes',
  ],
  ['reading nodes', k({ verb: 'list', resource: 'nodes' }), 'allow', 'everything'],
  [
    'create /persistentvolumes',
    k({ verb: 'create', apiGroup: '', resource: 'persistentvolumes', name: 'v' }),
    'deny',
    'chaperone-no-node-storage',
  ],
  [
    'patch /persistentvolumes',
    k({ verb: 'patch', apiGroup: '', resource: 'persistentvolumes', name: 'v' }),
    'deny',
    'chaperone-no-node-storage',
  ],
  [
    'update /persistentvolumes',
    k({ verb: 'update', apiGroup: '', resource: 'persistentvolumes', name: 'v' }),
    'deny',
    'chaperone-no-node-storage',
  ],
  [
    'create storage.k8s.io/storageclasses',
    k({ verb: 'create', apiGroup: 'storage.k8s.io', resource: 'storageclasses', name: 'v' }),
    'deny',
    'chaperone-no-node-storage',
  ],
  [
    'patch storage.k8s.io/storageclasses',
    k({ verb: 'patch', apiGroup: 'storage.k8s.io', resource: 'storageclasses', name: 'v' }),
    'deny',
    'chaperone-no-node-storage',
  ],
  [
    'update storage.k8s.io/storageclasses',
    k({ verb: 'update', apiGroup: 'storage.k8s.io', resource: 'storageclasses', name: 'v' }),
    'deny',
    'chaperone-no-node-storage',
  ],
  [
    'create storage.k8s.io/csidrivers',
    k({ verb: 'create', apiGroup: 'storage.k8s.io', resource: 'csidrivers', name: 'v' }),
    'deny',
    'chaperone-no-node-storage',
  ],
  [
    'patch storage.k8s.io/csidrivers',
    k({ verb: 'patch', apiGroup: 'storage.k8s.io', resource: 'csidrivers', name: 'v' }),
    'deny',
    'chaperone-no-node-storage',
  ],
  [
    'update storage.k8s.io/csidrivers',
    k({ verb: 'update', apiGroup: 'storage.k8s.io', resource: 'csidrivers', name: 'v' }),
    'deny',
    'chaperone-no-node-storage',
  ],
  [
    'create storage.k8s.io/volumeattachments',
    k({ verb: 'create', apiGroup: 'storage.k8s.io', resource: 'volumeattachments', name: 'v' }),
    'deny',
    'chaperone-no-node-storage',
  ],
  [
    'patch storage.k8s.io/volumeattachments',
    k({ verb: 'patch', apiGroup: 'storage.k8s.io', resource: 'volumeattachments', name: 'v' }),
    'deny',
    'chaperone-no-node-storage',
  ],
  [
    'update storage.k8s.io/volumeattachments',
    k({ verb: 'update', apiGroup: 'storage.k8s.io', resource: 'volumeattachments', name: 'v' }),
    'deny',
    'chaperone-no-node-storage',
  ],
  [
    'reading PersistentVolumes',
    k({ verb: 'get', resource: 'persistentvolumes', name: 'v' }),
    'allow',
    'everything',
  ],
  [
    'creating a PersistentVolumeClaim',
    k({ verb: 'create', resource: 'persistentvolumeclaims', namespace: 'x' }),
    'allow',
    'everything',
  ],
  [
    'creating a PodPreset',
    k({ verb: 'create', apiGroup: 'settings.k8s.io', resource: 'podpresets', namespace: 'x' }),
    'deny',
    'chaperone-no-pod-presets',
  ],
  [
    'deleting its own pod',
    k({ verb: 'delete', resource: 'pods', namespace: 'agents', name: 'agent-0' }),
    'deny',
    'chaperone-protect-own-pod',
  ],
  [
    'evicting its own pod',
    k({ verb: 'create', resource: 'pods', subresource: 'eviction', namespace: 'agents', name: 'agent-0' }),
    'deny',
    'chaperone-protect-own-pod',
  ],
  [
    'deleting every pod of its namespace (its own among them)',
    k({ verb: 'deletecollection', resource: 'pods', namespace: 'agents' }),
    'deny',
    'chaperone-protect-own-pod',
  ],
  [
    'port-forward into its own pod',
    {
      ...k({
        verb: 'create',
        resource: 'pods',
        subresource: 'portforward',
        namespace: 'agents',
        name: 'agent-0',
      }),
      protocol: 'exec',
      exec: { kind: 'portforward', argv: [], ports: [6443] },
    },
    'deny',
    'chaperone-no-port-forward-to-own-pod',
  ],
  [
    'kubectl auth can-i create pods/portforward on its own pod',
    k({ verb: 'create', resource: 'pods', subresource: 'portforward', namespace: 'agents', name: 'agent-0' }),
    'deny',
    'chaperone-no-port-forward-to-own-pod',
  ],
  [
    'port-forward into another pod of its namespace',
    {
      ...k({
        verb: 'create',
        resource: 'pods',
        subresource: 'portforward',
        namespace: 'agents',
        name: 'web-1',
      }),
      protocol: 'exec',
      exec: { kind: 'portforward', argv: [] },
    },
    'allow',
    'everything',
  ],
  [
    'deleting another pod of its namespace',
    k({ verb: 'delete', resource: 'pods', namespace: 'agents', name: 'web-1' }),
    'allow',
    'everything',
  ],
  [
    'deleting a pod of the same name in another namespace',
    k({ verb: 'delete', resource: 'pods', namespace: 'other', name: 'agent-0' }),
    'allow',
    'everything',
  ],
];

describe('built-in rules no policy can switch off', () => {
  for (const [name, action, expected, rule] of table) {
    it(name, () => {
      const d = evaluate(action, allowAll, protection);
      assert.equal(d.action, expected, JSON.stringify(d));
      assert.equal(d.rule, rule);
      if (expected === 'deny') {
        assert.equal(d.reason, 'self_protection');
        assert.ok(d.message.length > 20, d.message);
      }
    });
  }

  it("a policy's deny of Secrets still wins over the built-in mask", () => {
    const d = evaluate(k({ resource: 'secrets', namespace: 'agents' }), denySecrets, protection);
    assert.equal(d.action, 'deny');
    assert.equal(d.rule, 'no-secrets');
  });

  it("a policy's own mask of Secrets keeps its rule and always masks the values", () => {
    const own = parsePolicy({
      apiVersion: 'chaperone.dev/v1alpha1',
      kind: 'GuardrailPolicy',
      metadata: { name: 'm' },
      spec: {
        defaultAction: 'allow',
        rules: [
          { name: 'mask-labels', match: { resources: ['secrets'] }, action: 'mask', mask: { fields: ['x'] } },
        ],
      },
    });
    const d = evaluate(k({ resource: 'secrets' }), own, protection);
    assert.equal(d.action, 'mask');
    assert.equal(d.rule, 'mask-labels');
    assert.deepEqual([...(d.maskFields ?? [])].sort(), ['data', 'stringData', 'x']);
  });

  it('without an injector namespace configured, no namespace is treated as the injector', () => {
    const { injectorNamespace: _, ...rest } = protection;
    const d = evaluate(
      k({
        verb: 'patch',
        apiGroup: 'apps',
        resource: 'deployments',
        namespace: 'chaperone-system',
        name: 'x',
      }),
      allowAll,
      rest,
    );
    assert.equal(d.action, 'allow');
  });
});
