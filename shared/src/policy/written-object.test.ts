// The built-in rules over written objects, as a table: the action, the object
// as it would be stored, the stored object before and the namespace's labels.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Action, SelfProtection } from './types.ts';
import { checkWrittenObject, needsNamespace, type WrittenObject, writeCheckOf } from './written-object.ts';

const protection: SelfProtection = {
  namespace: 'agents',
  policyConfigMaps: ['chaperone-policy'],
  sidecarContainer: 'chaperone-sidecar',
  injectorNamespace: 'chaperone-system',
};
const OPTED_IN = { 'chaperone.dev/inject': 'enabled' };
const SECRET = 'hunter2-correct-horse';
const SECRET_B64 = Buffer.from(SECRET).toString('base64');

const k = (a: Partial<Action>): Action => ({
  protocol: 'kubernetes',
  verb: 'create',
  apiGroup: '',
  namespace: 'agents',
  ...a,
});

const pod = (extra: Record<string, unknown> = {}, labels: Record<string, string> = {}) => ({
  metadata: { name: 'p', labels: { app: 'a', ...labels } },
  spec: { containers: [{ name: 'app', image: 'nginx' }], ...extra },
});
const injectedPod = (image = 'nginx', sidecarImage = 'chaperone:1', labels: Record<string, string> = {}) => ({
  metadata: {
    name: 'p',
    labels: { app: 'a', 'chaperone.dev/injected': 'true', ...labels },
    annotations: { 'chaperone.dev/status': '{"v":1}' },
  },
  spec: {
    initContainers: [{ name: 'chaperone-sidecar', image: sidecarImage, restartPolicy: 'Always' }],
    containers: [{ name: 'app', image }],
    volumes: [{ name: 'chaperone-token', projected: { sources: [{ serviceAccountToken: { path: 't' } }] } }],
  },
});
const deployment = (template: unknown, replicas = 1) => ({
  metadata: { name: 'd' },
  spec: { replicas, template },
});

// [case, written object, expected rules (empty: allowed)]
const table: [string, WrittenObject, string[]][] = [
  [
    'normal pod in an opted-in namespace',
    { action: k({ resource: 'pods' }), object: pod(), namespaceLabels: OPTED_IN },
    [],
  ],
  [
    'pod in a namespace that is not opted in',
    { action: k({ resource: 'pods', namespace: 'other' }), object: pod(), namespaceLabels: {} },
    ['chaperone-no-unguarded-namespace'],
  ],
  [
    'pod in a namespace labelled otherwise',
    {
      action: k({ resource: 'pods', namespace: 'other' }),
      object: pod(),
      namespaceLabels: { 'chaperone.dev/inject': 'disabled' },
    },
    ['chaperone-no-unguarded-namespace'],
  ],
  [
    'pod in a namespace that does not exist',
    { action: k({ resource: 'pods', namespace: 'gone' }), object: pod(), namespaceLabels: null },
    ['chaperone-no-unguarded-namespace'],
  ],
  [
    'pod in kube-system, even if labelled',
    { action: k({ resource: 'pods', namespace: 'kube-system' }), object: pod(), namespaceLabels: OPTED_IN },
    ['chaperone-no-unguarded-namespace'],
  ],
  [
    "pod in the injector's namespace, even if labelled",
    {
      action: k({ resource: 'pods', namespace: 'chaperone-system' }),
      object: pod(),
      namespaceLabels: OPTED_IN,
    },
    ['chaperone-no-unguarded-namespace'],
  ],
  [
    'hostNetwork pod, with the opt-out label, in an unguarded namespace: every reason',
    {
      action: k({ resource: 'pods', namespace: 'other' }),
      object: pod({ hostNetwork: true }, { 'chaperone.dev/inject': 'false' }),
      namespaceLabels: {},
    },
    ['chaperone-no-unguarded-namespace', 'chaperone-no-opt-out', 'chaperone-no-host-namespaces'],
  ],
  [
    'removing chaperone.dev/injected from an injected pod',
    {
      action: k({ verb: 'patch', resource: 'pods', name: 'p' }),
      previous: injectedPod(),
      object: { ...injectedPod(), metadata: { ...injectedPod().metadata, labels: { app: 'a' } } },
    },
    ['chaperone-keep-pod-guarded'],
  ],
  [
    'changing the status annotation of an injected pod (through pods/status)',
    {
      action: k({ verb: 'patch', resource: 'pods', name: 'p', subresource: 'status' }),
      previous: injectedPod(),
      object: {
        ...injectedPod(),
        metadata: { ...injectedPod().metadata, annotations: { 'chaperone.dev/status': '{}' } },
      },
    },
    ['chaperone-keep-pod-guarded'],
  ],
  [
    'relabelling an injected pod, chaperone.dev/* untouched',
    {
      action: k({ verb: 'patch', resource: 'pods', name: 'p' }),
      previous: injectedPod(),
      object: injectedPod('nginx', 'chaperone:1', { team: 'x' }),
    },
    [],
  ],
  [
    "setting the agent container's image of an injected pod",
    {
      action: k({ verb: 'patch', resource: 'pods', name: 'p' }),
      previous: injectedPod(),
      object: injectedPod('busybox'),
    },
    [],
  ],
  [
    "setting the sidecar's image",
    {
      action: k({ verb: 'patch', resource: 'pods', name: 'p' }),
      previous: injectedPod(),
      object: injectedPod('nginx', 'evil:1'),
    },
    ['chaperone-keep-pod-guarded'],
  ],
  [
    'changing the image of a pod that was never injected',
    {
      action: k({ verb: 'update', resource: 'pods', name: 'p', namespace: 'other' }),
      previous: pod(),
      object: { ...pod(), spec: { containers: [{ name: 'app', image: 'evil' }] } },
    },
    ['chaperone-keep-pod-guarded'],
  ],
  [
    'relabelling a pod that was never injected',
    {
      action: k({ verb: 'patch', resource: 'pods', name: 'p', namespace: 'other' }),
      previous: pod(),
      object: pod({}, { x: 'y' }),
    },
    [],
  ],
  [
    'adding the opt-out label to a running pod',
    {
      action: k({ verb: 'patch', resource: 'pods', name: 'p' }),
      previous: injectedPod(),
      object: injectedPod('nginx', 'chaperone:1', { 'chaperone.dev/inject': 'false' }),
    },
    ['chaperone-keep-pod-guarded'],
  ],
  [
    'normal Deployment',
    {
      action: k({ apiGroup: 'apps', resource: 'deployments' }),
      object: deployment(pod()),
      namespaceLabels: OPTED_IN,
    },
    [],
  ],
  [
    'Deployment with an opt-out template',
    {
      action: k({ apiGroup: 'apps', resource: 'deployments' }),
      object: deployment({
        metadata: { annotations: { 'chaperone.dev/inject': 'false' } },
        spec: pod().spec,
      }),
      namespaceLabels: OPTED_IN,
    },
    ['chaperone-no-opt-out'],
  ],
  [
    'Deployment in a namespace not opted in',
    {
      action: k({ apiGroup: 'apps', resource: 'deployments', namespace: 'other' }),
      object: deployment(pod()),
      namespaceLabels: {},
    },
    ['chaperone-no-unguarded-namespace'],
  ],
  [
    'patch that adds the opt-out label to the template',
    {
      action: k({ verb: 'patch', apiGroup: 'apps', resource: 'deployments', name: 'd' }),
      previous: deployment(pod()),
      object: deployment(pod({}, { 'chaperone.dev/inject': 'false' })),
      namespaceLabels: OPTED_IN,
    },
    ['chaperone-no-opt-out'],
  ],
  [
    'set env from a Secret on a Deployment',
    {
      action: k({ verb: 'patch', apiGroup: 'apps', resource: 'deployments', name: 'd' }),
      previous: deployment(pod()),
      object: deployment({
        ...pod(),
        spec: { containers: [{ name: 'app', image: 'nginx', envFrom: [{ secretRef: { name: 'db' } }] }] },
      }),
      namespaceLabels: OPTED_IN,
    },
    ['chaperone-no-unmasked-secrets'],
  ],
  [
    'scaling a Deployment whose template already escapes starts nothing new',
    {
      action: k({ verb: 'patch', apiGroup: 'apps', resource: 'deployments', name: 'd', namespace: 'other' }),
      previous: deployment(pod({ hostNetwork: true }), 1),
      object: deployment(pod({ hostNetwork: true }), 3),
      namespaceLabels: {},
    },
    [],
  ],
  [
    'changing the image of a Deployment that escapes is refused',
    {
      action: k({ verb: 'patch', apiGroup: 'apps', resource: 'deployments', name: 'd' }),
      previous: deployment(pod({ hostNetwork: true })),
      object: deployment({
        ...pod({ hostNetwork: true }),
        spec: { hostNetwork: true, containers: [{ name: 'app', image: 'evil' }] },
      }),
      namespaceLabels: OPTED_IN,
    },
    ['chaperone-no-host-namespaces'],
  ],
  [
    'rollout restart of a normal Deployment',
    {
      action: k({ verb: 'patch', apiGroup: 'apps', resource: 'deployments', name: 'd' }),
      previous: deployment(pod()),
      object: deployment({
        ...pod(),
        metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': 'now' } },
      }),
      namespaceLabels: OPTED_IN,
    },
    [],
  ],
  [
    'CronJob with a hostPath volume',
    {
      action: k({ apiGroup: 'batch', apiVersion: 'v1beta1', resource: 'cronjobs' }),
      object: {
        spec: {
          jobTemplate: { spec: { template: pod({ volumes: [{ name: 'r', hostPath: { path: '/' } }] }) } },
        },
      },
      namespaceLabels: OPTED_IN,
    },
    ['chaperone-no-host-path'],
  ],
  [
    'service-account-token Secret',
    { action: k({ resource: 'secrets' }), object: { type: 'kubernetes.io/service-account-token' } },
    ['chaperone-no-token-secrets'],
  ],
  [
    'bootstrap token Secret',
    {
      action: k({ resource: 'secrets', namespace: 'kube-system' }),
      object: { type: 'bootstrap.kubernetes.io/token' },
    },
    ['chaperone-no-token-secrets'],
  ],
  ['Opaque Secret', { action: k({ resource: 'secrets' }), object: { type: 'Opaque', data: {} } }, []],
  ['Secret with no type', { action: k({ resource: 'secrets' }), object: { data: {} } }, []],
  [
    'patching a token Secret',
    {
      action: k({ verb: 'patch', resource: 'secrets', name: 't' }),
      previous: { type: 'kubernetes.io/service-account-token' },
      object: { type: 'kubernetes.io/service-account-token' },
    },
    ['chaperone-no-token-secrets'],
  ],
  [
    'allow-all egress NetworkPolicy',
    {
      action: k({ apiGroup: 'networking.k8s.io', resource: 'networkpolicies', name: 'open' }),
      object: { spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{}] } },
    },
    ['chaperone-no-egress-policies'],
  ],
  [
    'egress rules without policyTypes',
    {
      action: k({ apiGroup: 'networking.k8s.io', resource: 'networkpolicies', name: 'open' }),
      object: { spec: { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }] } },
    },
    ['chaperone-no-egress-policies'],
  ],
  [
    'ingress-only NetworkPolicy',
    {
      action: k({ apiGroup: 'networking.k8s.io', resource: 'networkpolicies', name: 'in' }),
      object: { spec: { podSelector: {}, policyTypes: ['Ingress'], ingress: [{}] } },
    },
    [],
  ],
  [
    "a container named like the sidecar, and volumes named like the injector's",
    {
      action: k({ resource: 'pods' }),
      object: pod({
        containers: [
          {
            name: 'chaperone-sidecar',
            image: 'evil',
            volumeMounts: [{ name: 'chaperone-token', mountPath: '/t' }],
          },
        ],
        volumes: [{ name: 'chaperone-token', emptyDir: {} }],
      }),
      namespaceLabels: OPTED_IN,
    },
    ['chaperone-no-reserved-names', 'chaperone-no-reserved-names', 'chaperone-no-reserved-names'],
  ],
  [
    'a Deployment template mounting a chaperone-* volume',
    {
      action: k({ apiGroup: 'apps', resource: 'deployments' }),
      object: deployment(
        pod({
          initContainers: [
            { name: 'i', image: 'x', volumeMounts: [{ name: 'chaperone-agent-sa', mountPath: '/s' }] },
          ],
        }),
      ),
      namespaceLabels: OPTED_IN,
    },
    ['chaperone-no-reserved-names'],
  ],
  [
    'a PersistentVolumeClaim naming a volume',
    {
      action: k({ resource: 'persistentvolumeclaims' }),
      object: { spec: { volumeName: 'pv-of-someone-else', resources: {} } },
    },
    ['chaperone-no-volume-binding'],
  ],
  [
    'a PersistentVolumeClaim of a StorageClass',
    { action: k({ resource: 'persistentvolumeclaims' }), object: { spec: { storageClassName: 'standard' } } },
    [],
  ],
  [
    'relabelling a bound claim keeps the volume it has',
    {
      action: k({ verb: 'patch', resource: 'persistentvolumeclaims', name: 'c' }),
      previous: { spec: { volumeName: 'pv-1' } },
      object: { metadata: { labels: { a: 'b' } }, spec: { volumeName: 'pv-1' } },
    },
    [],
  ],
  // RBAC that opens the API server to callers around the guard (rbacEscapes).
  [
    'a RoleBinding of the edit role to anonymous callers',
    {
      action: k({ apiGroup: 'rbac.authorization.k8s.io', resource: 'rolebindings' }),
      object: {
        roleRef: { kind: 'ClusterRole', name: 'edit' },
        subjects: [
          { kind: 'ServiceAccount', name: 'agent', namespace: 'agents' },
          { kind: 'User', name: 'system:anonymous' },
        ],
      },
    },
    ['chaperone-no-open-grants'],
  ],
  [
    'a ClusterRoleBinding patched to every authenticated caller (dry-run result)',
    {
      action: k({
        verb: 'patch',
        apiGroup: 'rbac.authorization.k8s.io',
        resource: 'clusterrolebindings',
        name: 'b',
      }),
      previous: { subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace: 'agents' }] },
      object: { subjects: [{ kind: 'Group', name: 'system:authenticated' }] },
    },
    ['chaperone-no-open-grants'],
  ],
  [
    'a RoleBinding to a ServiceAccount',
    {
      action: k({ apiGroup: 'rbac.authorization.k8s.io', resource: 'rolebindings' }),
      object: { subjects: [{ kind: 'ServiceAccount', name: 'builder', namespace: 'agents' }] },
    },
    [],
  ],
  [
    "a patch of one of Kubernetes' own ClusterRoles",
    {
      action: k({
        verb: 'patch',
        apiGroup: 'rbac.authorization.k8s.io',
        resource: 'clusterroles',
        name: 'system:public-info-viewer',
      }),
      object: { metadata: { name: 'system:public-info-viewer' }, rules: [] },
    },
    ['chaperone-no-open-grants'],
  ],
  [
    'a ClusterRole that aggregates into view',
    {
      action: k({ apiGroup: 'rbac.authorization.k8s.io', resource: 'clusterroles' }),
      object: {
        metadata: { name: 'more', labels: { 'rbac.authorization.k8s.io/aggregate-to-view': 'true' } },
      },
    },
    ['chaperone-no-open-grants'],
  ],
  [
    'a ClusterRole of its own',
    {
      action: k({ apiGroup: 'rbac.authorization.k8s.io', resource: 'clusterroles' }),
      object: { metadata: { name: 'reader' }, rules: [] },
    },
    [],
  ],
  [
    'a Role that a binding grants to anonymous callers',
    {
      action: k({ verb: 'patch', apiGroup: 'rbac.authorization.k8s.io', resource: 'roles', name: 'r' }),
      object: { metadata: { name: 'r' }, rules: [] },
      openBindings: ['RoleBinding ns/r to User system:anonymous'],
    },
    ['chaperone-no-open-grants'],
  ],
  [
    'a Role granted to no open subject, under a system: name (only ClusterRoles of that name are Kubernetes’ own)',
    {
      action: k({ apiGroup: 'rbac.authorization.k8s.io', resource: 'roles' }),
      object: { metadata: { name: 'system:mine' }, rules: [] },
      openBindings: [],
    },
    [],
  ],
  [
    'a patch that copies a Secret value into an annotation (dry-run result)',
    {
      action: k({ verb: 'patch', resource: 'secrets', name: 's' }),
      previous: { metadata: { name: 's' }, data: { password: SECRET_B64 } },
      object: { metadata: { name: 's', annotations: { leak: SECRET_B64 } }, data: { password: SECRET_B64 } },
      request: [{ op: 'add', path: '/metadata/annotations', value: {} }],
    },
    ['chaperone-no-masked-value-patch'],
  ],
  [
    'a Secret value, decoded, inside a label',
    {
      action: k({ verb: 'update', resource: 'secrets', name: 's' }),
      previous: { metadata: { name: 's' }, data: { password: SECRET_B64 } },
      object: {
        metadata: { name: 's', labels: { x: `pre-${SECRET}-post` } },
        data: { password: SECRET_B64 },
      },
      request: {},
    },
    ['chaperone-no-masked-value-patch'],
  ],
  [
    'a Secret value the writer sent itself (kubectl apply keeps it in last-applied)',
    {
      action: k({ verb: 'patch', resource: 'secrets', name: 's' }),
      previous: { metadata: { name: 's' }, data: { password: SECRET_B64 } },
      object: {
        metadata: { name: 's', annotations: { last: `{"data":{"password":"${SECRET_B64}"}}` } },
        data: { password: SECRET_B64 },
      },
      request: { metadata: { annotations: { last: `{"data":{"password":"${SECRET_B64}"}}` } } },
    },
    [],
  ],
  [
    'a Secret whose value was already in a label, relabelled elsewhere',
    {
      action: k({ verb: 'patch', resource: 'secrets', name: 's' }),
      previous: {
        metadata: { labels: { user: 'admin' } },
        data: { user: Buffer.from('admin').toString('base64') },
      },
      object: {
        metadata: { labels: { user: 'admin', team: 'x' }, resourceVersion: '8' },
        data: { user: Buffer.from('admin').toString('base64') },
      },
      request: { metadata: { labels: { team: 'x' } } },
    },
    [],
  ],
  [
    'a short Secret value is matched whole only',
    {
      action: k({ verb: 'patch', resource: 'secrets', name: 's' }),
      previous: { data: { port: Buffer.from('5432').toString('base64') } },
      object: { metadata: { labels: { note: 'port-5432-open', copy: '5432' } } },
      request: {},
    },
    ['chaperone-no-masked-value-patch'],
  ],
  [
    'a custom resource with a pod template that escapes',
    {
      action: k({ apiGroup: 'example.com', resource: 'runners' }),
      object: {
        metadata: { name: 'r' },
        spec: {
          template: pod({ hostNetwork: true }),
          jobs: [{ spec: { containers: [{ name: 'a', securityContext: { privileged: true } }] } }],
        },
      },
      namespaceLabels: OPTED_IN,
    },
    ['chaperone-no-host-namespaces', 'chaperone-no-privileged'],
  ],
  [
    'a custom resource with a pod spec, in a namespace that is not opted in',
    {
      action: k({ apiGroup: 'example.com', resource: 'runners', namespace: 'other' }),
      object: { spec: { podSpec: { containers: [{ name: 'a', image: 'x' }] } } },
      namespaceLabels: {},
    },
    ['chaperone-no-unguarded-namespace'],
  ],
  [
    'a custom resource with no pod spec, anywhere',
    {
      action: k({ apiGroup: 'example.com', resource: 'widgets', namespace: undefined }),
      object: { spec: { size: 3, containersWanted: 2 } },
    },
    [],
  ],
  [
    'a custom resource whose unchanged pod spec escapes starts nothing new',
    {
      action: k({ verb: 'patch', apiGroup: 'example.com', resource: 'runners', namespace: 'other' }),
      previous: { spec: { template: pod({ hostNetwork: true }), replicas: 1 } },
      object: { spec: { template: pod({ hostNetwork: true }), replicas: 2 } },
      namespaceLabels: {},
    },
    [],
  ],
];

describe('checkWrittenObject', () => {
  for (const [name, w, expected] of table) {
    it(name, () => {
      const d = checkWrittenObject(w, protection);
      if (expected.length === 0) {
        assert.equal(d, undefined, d?.message);
        return;
      }
      assert.ok(d);
      assert.equal(d.action, 'deny');
      assert.equal(d.reason, 'self_protection');
      assert.equal(d.rule, expected[0]);
      assert.deepEqual(
        d.causes?.map((c) => c.rule),
        expected,
      );
      for (const rule of expected) assert.ok(d.message.includes(`[${rule}]`), d.message);
    });
  }
});

describe('writeCheckOf', () => {
  const cases: [Partial<Action>, string | undefined][] = [
    [{ resource: 'pods' }, 'pod'],
    [{ verb: 'patch', resource: 'pods', subresource: 'status' }, 'pod'],
    [{ verb: 'create', resource: 'pods', subresource: 'binding' }, undefined],
    [{ verb: 'create', resource: 'pods', subresource: 'eviction' }, undefined],
    [{ verb: 'get', resource: 'pods' }, undefined],
    [{ verb: 'delete', resource: 'pods' }, undefined],
    [{ verb: 'update', apiGroup: 'apps', resource: 'deployments' }, 'pod-template'],
    [{ verb: 'patch', apiGroup: 'apps', resource: 'deployments', subresource: 'scale' }, undefined],
    [{ verb: 'patch', apiGroup: 'apps', resource: 'deployments', subresource: 'status' }, undefined],
    [{ apiGroup: 'batch', resource: 'cronjobs' }, 'pod-template'],
    [{ resource: 'podtemplates' }, 'pod-template'],
    [{ resource: 'replicationcontrollers' }, 'pod-template'],
    [{ resource: 'secrets' }, 'secret'],
    [{ apiGroup: 'networking.k8s.io', resource: 'networkpolicies' }, 'network-policy'],
    [{ resource: 'persistentvolumeclaims' }, 'persistent-volume-claim'],
    [{ resource: 'persistentvolumes' }, undefined],
    [{ apiGroup: 'rbac.authorization.k8s.io', resource: 'rolebindings' }, 'rbac'],
    [{ verb: 'patch', apiGroup: 'rbac.authorization.k8s.io', resource: 'clusterroles' }, 'rbac'],
    [{ apiGroup: 'rbac.authorization.k8s.io', resource: 'roles' }, 'rbac'],
    [{ resource: 'configmaps' }, undefined],
    [{ apiGroup: 'example.com', resource: 'deployments' }, 'custom-resource'],
    [
      { verb: 'patch', apiGroup: 'example.com', resource: 'runners', subresource: 'status' },
      'custom-resource',
    ],
    [{ verb: 'delete', apiGroup: 'example.com', resource: 'runners' }, undefined],
    [{ apiGroup: 'gateway.networking.k8s.io', resource: 'gateways' }, 'custom-resource'],
    [{ apiGroup: 'storage.k8s.io', resource: 'storageclasses' }, undefined],
  ];
  for (const [a, expected] of cases) {
    it(`${a.verb ?? 'create'} ${a.apiGroup ?? ''}/${a.resource}${a.subresource ? `/${a.subresource}` : ''}`, () => {
      const check = writeCheckOf(k(a));
      assert.equal(check, expected);
      if (check && check !== 'custom-resource') {
        assert.equal(needsNamespace(check), check === 'pod' || check === 'pod-template');
      }
    });
  }
});

describe('needsNamespace for custom resources', () => {
  it('only when a pod spec is new or changed', () => {
    const spec = { containers: [{ name: 'a', image: 'x' }] };
    assert.equal(needsNamespace('custom-resource', { spec: { size: 1 } }), false);
    assert.equal(needsNamespace('custom-resource', { spec: { p: { spec } } }), true);
    assert.equal(
      needsNamespace('custom-resource', { spec: { p: { spec } } }, { spec: { p: { spec } } }),
      false,
    );
  });
});
