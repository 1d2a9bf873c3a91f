import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { denyAllPolicy, evaluate } from './evaluate.ts';
import { parsePolicy } from './parse.ts';
import type { Action, SelfProtection } from './types.ts';

const protection: SelfProtection = {
  namespace: 'agents',
  policyConfigMaps: ['chaperone-policy'],
  sidecarContainer: 'chaperone-sidecar',
};

const policy = parsePolicy(`
apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: test }
spec:
  defaultAction: allow
  review: { timeout: 2m }
  rules:
    - name: no-namespace-delete
      match: { verbs: [delete, deletecollection], resources: [namespaces] }
      action: deny
      message: Agents may not delete namespaces.
    - name: mask-secrets
      match: { resources: [secrets], verbs: [get, list, watch] }
      action: mask
    - name: review-scale
      match: { apiGroups: [apps], resources: [deployments/scale, statefulsets/*] }
      action: review
    - name: prod-read-only
      match: { namespaces: ['prod-*'], verbs: [create, update, patch, delete] }
      action: deny
    - name: no-rm-rf
      match: { protocols: [exec], exec: { commands: ['rm\\s+-[a-zA-Z]*r[a-zA-Z]*f', 'mkfs'] } }
      action: deny
      message: Recursive deletes are not allowed.
    - name: no-shells-in-db
      match: { exec: { argv0: [psql, 'pg_*'], containers: [db] } }
      action: review
      review: { timeout: 30s }
    - name: no-drop
      match: { protocols: [postgres], sql: { statements: [drop, truncate, delete-without-where] } }
      action: deny
    - name: mask-users
      match: { sql: { tables: [users], columns: [email, ssn] } }
      action: mask
    - name: healthz
      match: { nonResourceURLs: ['/healthz*'] }
      action: allow
`);

const k = (a: Partial<Action>): Action => ({ protocol: 'kubernetes', verb: 'get', ...a });
const x = (argv: string[], container?: string): Action => ({
  protocol: 'exec',
  verb: 'create',
  resource: 'pods',
  subresource: 'exec',
  namespace: 'agents',
  name: 'agent-0',
  exec: { kind: 'exec', argv, ...(container ? { container } : {}) },
});
const q = (
  ...statements: { kind: string; tables?: string[]; columns?: string[]; unqualified?: boolean }[]
): Action => ({
  protocol: 'postgres',
  verb: 'query',
  sql: { database: 'app', statements: statements.map((s) => ({ tables: [], ...s })) },
});

const table: [string, Action, string, string][] = [
  // [case, action, expected action, expected rule]
  ['read pods', k({ resource: 'pods', namespace: 'agents' }), 'allow', 'default'],
  [
    'delete namespace',
    k({ verb: 'delete', resource: 'namespaces', name: 'prod' }),
    'deny',
    'chaperone-protect-namespaces',
  ],
  [
    'deletecollection namespaces',
    k({ verb: 'deletecollection', resource: 'namespaces' }),
    'deny',
    'chaperone-protect-namespaces',
  ],
  ['get secret', k({ resource: 'secrets', namespace: 'agents', name: 'db' }), 'mask', 'mask-secrets'],
  ['watch secrets', k({ verb: 'watch', resource: 'secrets', namespace: 'agents' }), 'mask', 'mask-secrets'],
  [
    'create secret: its answer is masked by the built-in rule',
    k({ verb: 'create', resource: 'secrets', namespace: 'agents' }),
    'mask',
    'chaperone-mask-secrets',
  ],
  [
    'scale deployment',
    k({ verb: 'patch', apiGroup: 'apps', resource: 'deployments', subresource: 'scale' }),
    'review',
    'review-scale',
  ],
  [
    'statefulset status',
    k({ verb: 'get', apiGroup: 'apps', resource: 'statefulsets', subresource: 'status' }),
    'review',
    'review-scale',
  ],
  [
    'deployment itself',
    k({ verb: 'patch', apiGroup: 'apps', resource: 'deployments', namespace: 'dev' }),
    'allow',
    'default',
  ],
  [
    'core group is not apps',
    k({ verb: 'patch', resource: 'deployments', subresource: 'scale' }),
    'allow',
    'default',
  ],
  [
    'prod write',
    k({ verb: 'create', resource: 'configmaps', namespace: 'prod-eu' }),
    'deny',
    'prod-read-only',
  ],
  ['prod read', k({ verb: 'list', resource: 'configmaps', namespace: 'prod-eu' }), 'allow', 'default'],
  [
    'cluster-scoped write has no namespace',
    k({ verb: 'create', resource: 'clusterroles' }),
    'allow',
    'default',
  ],
  ['healthz', k({ nonResourceURL: '/healthz/etcd' }), 'allow', 'healthz'],
  ['rm -rf', x(['sh', '-c', 'rm -rf /data']), 'deny', 'no-rm-rf'],
  ['rm -fr is not -rf', x(['rm', '-fr', '/data']), 'allow', 'default'],
  ['ls', x(['ls', '-la']), 'allow', 'default'],
  ['psql in db container', x(['/usr/bin/psql', '-c', 'select 1'], 'db'), 'review', 'no-shells-in-db'],
  ['psql elsewhere', x(['psql'], 'app'), 'allow', 'default'],
  ['exec into sidecar', x(['sh'], 'chaperone-sidecar'), 'deny', 'chaperone-no-exec-into-sidecar'],
  ['drop table', q({ kind: 'DropStmt', tables: ['users'] }), 'deny', 'no-drop'],
  ['delete with where', q({ kind: 'DeleteStmt', tables: ['users'] }), 'allow', 'default'],
  [
    'delete without where',
    q({ kind: 'DeleteStmt', tables: ['users'], unqualified: true }),
    'deny',
    'no-drop',
  ],
  [
    'select masked columns',
    q({ kind: 'SelectStmt', tables: ['public.users'], columns: ['email'] }),
    'mask',
    'mask-users',
  ],
  ['select other columns', q({ kind: 'SelectStmt', tables: ['users'], columns: ['id'] }), 'allow', 'default'],
  [
    'multi-statement: worst wins',
    q({ kind: 'SelectStmt', tables: ['t'] }, { kind: 'TruncateStmt', tables: ['t'] }),
    'deny',
    'no-drop',
  ],
  [
    'policy configmap',
    k({ verb: 'patch', resource: 'configmaps', namespace: 'agents', name: 'chaperone-policy' }),
    'deny',
    'chaperone-protect-policy',
  ],
  [
    'other configmap',
    k({ verb: 'patch', resource: 'configmaps', namespace: 'agents', name: 'app' }),
    'allow',
    'default',
  ],
  [
    'configmap deletecollection',
    k({ verb: 'deletecollection', resource: 'configmaps', namespace: 'agents' }),
    'deny',
    'chaperone-protect-policy',
  ],
  [
    'network policy',
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
    'webhook config',
    k({
      verb: 'delete',
      apiGroup: 'admissionregistration.k8s.io',
      resource: 'mutatingwebhookconfigurations',
      name: 'chaperone',
    }),
    'deny',
    'chaperone-protect-webhooks',
  ],
  [
    'ephemeral containers',
    k({ verb: 'patch', resource: 'pods', subresource: 'ephemeralcontainers', namespace: 'agents' }),
    'deny',
    'chaperone-no-ephemeral-containers',
  ],
  [
    'impersonation',
    k({ resource: 'pods', impersonation: ['Impersonate-User'] }),
    'deny',
    'chaperone-no-impersonation',
  ],
  [
    'create namespace is not self-protection',
    k({ verb: 'create', resource: 'namespaces' }),
    'allow',
    'default',
  ],
];

describe('evaluate', () => {
  for (const [name, action, expected, rule] of table) {
    it(name, () => {
      const d = evaluate(action, policy, protection);
      assert.equal(d.action, expected, `${name}: ${JSON.stringify(d)}`);
      assert.equal(d.rule, rule);
      assert.ok(d.message.length > 0);
    });
  }

  it('carries the rule message, mask fields and review timeouts', () => {
    const denied = evaluate(x(['rm', '-rf', '/']), policy, protection);
    assert.equal(denied.message, 'Recursive deletes are not allowed.');
    assert.equal(denied.reason, 'rule_matched');
    assert.deepEqual(evaluate(k({ resource: 'secrets' }), policy, protection).maskFields, [
      'data',
      'stringData',
    ]);
    assert.deepEqual(
      evaluate(
        k({ verb: 'patch', apiGroup: 'apps', resource: 'deployments', subresource: 'scale' }),
        policy,
        protection,
      ).review,
      { timeoutMs: 120_000, approvals: 1, approvers: [], grantMs: 0 },
    );
    assert.equal(evaluate(x(['psql'], 'db'), policy, protection).review?.timeoutMs, 30_000);
    assert.equal(denied.review, undefined);
  });

  it('self-protection cannot be overridden by an allow-everything policy', () => {
    const allowAll = parsePolicy({
      apiVersion: 'chaperone.dev/v1alpha1',
      kind: 'GuardrailPolicy',
      metadata: { name: 'yolo' },
      spec: { defaultAction: 'allow', rules: [{ name: 'everything', match: {}, action: 'allow' }] },
    });
    const d = evaluate(k({ verb: 'delete', resource: 'namespaces', name: 'agents' }), allowAll, protection);
    assert.equal(d.action, 'deny');
    assert.equal(d.reason, 'self_protection');
    assert.equal(evaluate(k({ resource: 'pods' }), allowAll, protection).rule, 'everything');
  });

  it('the deny-all policy denies everything with its reason', () => {
    const d = evaluate(k({ resource: 'pods' }), denyAllPolicy('policy file missing'), protection);
    assert.equal(d.action, 'deny');
    assert.equal(d.reason, 'policy_default');
    assert.match(d.message, /no valid guardrail policy is loaded \(policy file missing\)/);
  });

  it('is pure: the same input gives the same decision and nothing is mutated', () => {
    const action = Object.freeze(k({ resource: 'secrets', namespace: 'agents' }));
    assert.deepEqual(evaluate(action, policy, protection), evaluate(action, policy, protection));
  });
});

/**
 * Restrictive rules match everything a request reaches; allow rules exactly
 * what they name. Each restrictive case below was allowed before the rule
 * learnt to cover it (a deny walked around by asking for more than it names).
 */
describe('evaluate: restrictive rules cover what a request reaches, allow rules only what they name', () => {
  const restrictive = parsePolicy(`
apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: restrictive }
spec:
  defaultAction: allow
  rules:
    - name: locked-configmaps
      match: { resources: [configmaps], namespaces: [locked] }
      action: deny
    - name: api-service
      match: { resources: [services], names: [api] }
      action: deny
    - name: vault-secrets
      match: { resources: [secrets], namespaces: [vault] }
      action: mask
      mask: { fields: [data, stringData, metadata] }
    - name: builder-account
      match: { resources: [serviceaccounts], names: [builder] }
      action: review
    - name: no-deployment-patches
      match: { verbs: [patch], apiGroups: [apps], resources: [deployments] }
      action: deny
    - name: no-pod-writes
      match: { verbs: [create, update, patch], resources: [pods] }
      action: deny
    - name: no-pod-reads-in-quiet
      match: { verbs: [get], resources: [pods], namespaces: [quiet] }
      action: deny
    - name: no-logs
      match: { nonResourceURLs: [/logs, /debug/pprof/] }
      action: deny
    - name: hold-metrics
      match: { nonResourceURLs: [/metrics, /openapi/v?] }
      action: review
    - name: no-root
      match: { nonResourceURLs: [/] }
      action: deny
    - name: sealed
      match: { namespaces: [sealed] }
      action: deny
`);
  const allowOnly = parsePolicy(`
apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: allow-only }
spec:
  defaultAction: deny
  rules:
    - name: dev-configmaps
      match: { resources: [configmaps], namespaces: [dev] }
      action: allow
    - name: app-secret
      match: { resources: [secrets], names: [app] }
      action: allow
    - name: pods
      match: { resources: [pods] }
      action: allow
    - name: healthz
      match: { nonResourceURLs: [/healthz] }
      action: allow
    - name: cluster-wide-services
      match: { resources: [services], namespaces: ['*'] }
      action: allow
`);
  // Each case that a restrictive rule now decides was decided by the default (or a
  // built-in) before; the others are the bounds of that reach (another namespace,
  // cluster-scoped resources, `/logsx`) and the exact reading of allow rules.
  const cases: [string, 'restrictive' | 'allow-only', Action, string, string][] = [
    // item 1: namespaces — the cluster-wide list/watch/deletecollection serves every namespace
    [
      'get in the denied namespace',
      'restrictive',
      k({ resource: 'configmaps', namespace: 'locked', name: 'cm1' }),
      'deny',
      'locked-configmaps',
    ],
    [
      'cluster-wide list (fieldSelector metadata.namespace)',
      'restrictive',
      k({ verb: 'list', resource: 'configmaps' }),
      'deny',
      'locked-configmaps',
    ],
    [
      'cluster-wide watch (/api/v1/watch/configmaps)',
      'restrictive',
      k({ verb: 'watch', resource: 'configmaps' }),
      'deny',
      'locked-configmaps',
    ],
    [
      'cluster-wide watch naming the object by fieldSelector',
      'restrictive',
      k({ verb: 'watch', resource: 'configmaps', name: 'cm1' }),
      'deny',
      'locked-configmaps',
    ],
    [
      'cluster-wide deletecollection',
      'restrictive',
      k({ verb: 'deletecollection', apiGroup: '', resource: 'configmaps' }),
      'deny',
      'locked-configmaps',
    ],
    [
      'list in another namespace is not covered',
      'restrictive',
      k({ verb: 'list', resource: 'configmaps', namespace: 'open' }),
      'allow',
      'default',
    ],
    [
      'get without namespace is not a collection',
      'restrictive',
      k({ verb: 'get', resource: 'configmaps', name: 'cm1' }),
      'allow',
      'default',
    ],
    // item 1: names — a list without a name serves that name too
    [
      'get the denied name',
      'restrictive',
      k({ resource: 'services', namespace: 'open', name: 'api' }),
      'deny',
      'api-service',
    ],
    [
      'list in a namespace serves it',
      'restrictive',
      k({ verb: 'list', resource: 'services', namespace: 'open' }),
      'deny',
      'api-service',
    ],
    [
      'watch in a namespace serves it',
      'restrictive',
      k({ verb: 'watch', resource: 'services', namespace: 'open' }),
      'deny',
      'api-service',
    ],
    [
      'deletecollection deletes it',
      'restrictive',
      k({ verb: 'deletecollection', resource: 'services', namespace: 'open' }),
      'deny',
      'api-service',
    ],
    [
      'list naming another object is not covered',
      'restrictive',
      k({ verb: 'list', resource: 'services', namespace: 'open', name: 'web' }),
      'allow',
      'default',
    ],
    [
      'review covers lists too',
      'restrictive',
      k({ verb: 'list', resource: 'serviceaccounts', namespace: 'open' }),
      'review',
      'builder-account',
    ],
    [
      'mask covers the cluster-wide list of Secrets',
      'restrictive',
      k({ verb: 'list', resource: 'secrets' }),
      'mask',
      'vault-secrets',
    ],
    [
      'mask covers the cluster-wide watch of Secrets',
      'restrictive',
      k({ verb: 'watch', resource: 'secrets' }),
      'mask',
      'vault-secrets',
    ],
    [
      'mask does not reach other namespaces',
      'restrictive',
      k({ verb: 'list', resource: 'secrets', namespace: 'open' }),
      'mask',
      'chaperone-mask-secrets',
    ],
    // cluster-scoped resources have no namespace to span
    [
      'cluster-scoped list: nodes',
      'restrictive',
      k({ verb: 'list', apiGroup: '', resource: 'nodes' }),
      'allow',
      'default',
    ],
    [
      'cluster-scoped watch: clusterroles',
      'restrictive',
      k({ verb: 'watch', apiGroup: 'rbac.authorization.k8s.io', resource: 'clusterroles' }),
      'allow',
      'default',
    ],
    [
      'cluster-scoped list: storageclasses',
      'restrictive',
      k({ verb: 'list', apiGroup: 'storage.k8s.io', resource: 'storageclasses' }),
      'allow',
      'default',
    ],
    [
      'cluster-scoped deletecollection: priorityclasses',
      'restrictive',
      k({ verb: 'deletecollection', apiGroup: 'scheduling.k8s.io', resource: 'priorityclasses' }),
      'allow',
      'default',
    ],
    [
      'a namespaced resource of the same name in another group spans',
      'restrictive',
      k({ verb: 'list', apiGroup: 'example.com', resource: 'nodes' }),
      'deny',
      'sealed',
    ],
    [
      'unknown resources are taken to span namespaces',
      'restrictive',
      k({ verb: 'list', apiGroup: 'example.com', resource: 'widgets' }),
      'deny',
      'sealed',
    ],
    [
      'cluster-wide pod list spans the sealed namespace',
      'restrictive',
      k({ verb: 'list', resource: 'pods' }),
      'deny',
      'sealed',
    ],
    [
      'Namespace objects: get of the sealed one',
      'restrictive',
      k({ resource: 'namespaces', namespace: 'sealed', name: 'sealed' }),
      'deny',
      'sealed',
    ],
    [
      'Namespace objects: the list serves the sealed one',
      'restrictive',
      k({ verb: 'list', resource: 'namespaces' }),
      'deny',
      'sealed',
    ],
    [
      'Namespace objects: a watch naming it',
      'restrictive',
      k({ verb: 'watch', resource: 'namespaces', name: 'sealed' }),
      'deny',
      'sealed',
    ],
    [
      'Namespace objects: a watch naming another',
      'restrictive',
      k({ verb: 'watch', resource: 'namespaces', name: 'open' }),
      'allow',
      'default',
    ],
    // item 2: a plain resource covers its subresources in restrictive rules
    [
      'patch deployments',
      'restrictive',
      k({ verb: 'patch', apiGroup: 'apps', resource: 'deployments', namespace: 'open', name: 'web' }),
      'deny',
      'no-deployment-patches',
    ],
    [
      'patch deployments/scale',
      'restrictive',
      k({
        verb: 'patch',
        apiGroup: 'apps',
        resource: 'deployments',
        subresource: 'scale',
        namespace: 'open',
        name: 'web',
      }),
      'deny',
      'no-deployment-patches',
    ],
    [
      'get deployments/scale is another verb',
      'restrictive',
      k({
        verb: 'get',
        apiGroup: 'apps',
        resource: 'deployments',
        subresource: 'scale',
        namespace: 'open',
        name: 'web',
      }),
      'allow',
      'default',
    ],
    [
      'create pods/eviction',
      'restrictive',
      k({ verb: 'create', resource: 'pods', subresource: 'eviction', namespace: 'open', name: 'p' }),
      'deny',
      'no-pod-writes',
    ],
    [
      'create pods/binding',
      'restrictive',
      k({ verb: 'create', resource: 'pods', subresource: 'binding', namespace: 'open', name: 'p' }),
      'deny',
      'no-pod-writes',
    ],
    ['exec (create pods/exec)', 'restrictive', x(['ls']), 'deny', 'no-pod-writes'],
    [
      'get pods/log in the quiet namespace',
      'restrictive',
      k({ resource: 'pods', subresource: 'log', namespace: 'quiet', name: 'p' }),
      'deny',
      'no-pod-reads-in-quiet',
    ],
    // item 3: a non-resource URL without `*` covers its trailing `/` and what is below it
    ['/logs', 'restrictive', k({ nonResourceURL: '/logs' }), 'deny', 'no-logs'],
    ['/logs/', 'restrictive', k({ nonResourceURL: '/logs/' }), 'deny', 'no-logs'],
    [
      '/logs/kube-apiserver.log',
      'restrictive',
      k({ nonResourceURL: '/logs/kube-apiserver.log' }),
      'deny',
      'no-logs',
    ],
    ['/logsx is not below /logs', 'restrictive', k({ nonResourceURL: '/logsx' }), 'allow', 'default'],
    [
      '/debug/pprof/ covers /debug/pprof',
      'restrictive',
      k({ nonResourceURL: '/debug/pprof' }),
      'deny',
      'no-logs',
    ],
    [
      '/debug/pprof/ covers /debug/pprof/heap',
      'restrictive',
      k({ nonResourceURL: '/debug/pprof/heap' }),
      'deny',
      'no-logs',
    ],
    [
      '/metrics/ held like /metrics',
      'restrictive',
      k({ nonResourceURL: '/metrics/' }),
      'review',
      'hold-metrics',
    ],
    [
      'a ? glob covers below it too',
      'restrictive',
      k({ nonResourceURL: '/openapi/v2/x' }),
      'review',
      'hold-metrics',
    ],
    ['/ is only the root listing', 'restrictive', k({ nonResourceURL: '/' }), 'deny', 'no-root'],
    ['/ does not cover /version', 'restrictive', k({ nonResourceURL: '/version' }), 'allow', 'default'],
    // allow rules keep the exact reading
    [
      'allow: the named namespace',
      'allow-only',
      k({ verb: 'list', resource: 'configmaps', namespace: 'dev' }),
      'allow',
      'dev-configmaps',
    ],
    [
      'allow: a cluster-wide list is not the named namespace',
      'allow-only',
      k({ verb: 'list', resource: 'configmaps' }),
      'deny',
      'default',
    ],
    [
      'allow: a cluster-wide watch is not the named namespace',
      'allow-only',
      k({ verb: 'watch', resource: 'configmaps' }),
      'deny',
      'default',
    ],
    [
      'allow: `*` namespaces allows the cluster-wide list',
      'allow-only',
      k({ verb: 'list', resource: 'services' }),
      'allow',
      'cluster-wide-services',
    ],
    [
      'allow: the named object',
      'allow-only',
      k({ resource: 'secrets', namespace: 'dev', name: 'app' }),
      'mask',
      'chaperone-mask-secrets',
    ],
    [
      'allow: a list is not the named object',
      'allow-only',
      k({ verb: 'list', resource: 'secrets', namespace: 'dev' }),
      'deny',
      'default',
    ],
    ['allow: pods does not allow pods/exec', 'allow-only', x(['ls']), 'deny', 'default'],
    [
      'allow: pods does not allow pods/log',
      'allow-only',
      k({ resource: 'pods', subresource: 'log', namespace: 'dev', name: 'p' }),
      'deny',
      'default',
    ],
    [
      'allow: pods allows pods',
      'allow-only',
      k({ resource: 'pods', namespace: 'dev', name: 'p' }),
      'allow',
      'pods',
    ],
    ['allow: /healthz exactly', 'allow-only', k({ nonResourceURL: '/healthz' }), 'allow', 'healthz'],
    [
      'allow: /healthz does not allow /healthz/etcd',
      'allow-only',
      k({ nonResourceURL: '/healthz/etcd' }),
      'deny',
      'default',
    ],
    [
      'allow: /healthz does not allow /healthz/',
      'allow-only',
      k({ nonResourceURL: '/healthz/' }),
      'deny',
      'default',
    ],
  ];
  for (const [name, which, action, expected, rule] of cases) {
    it(`${which}: ${name}`, () => {
      const d = evaluate(action, which === 'restrictive' ? restrictive : allowOnly, protection);
      assert.equal(d.action, expected, `${name}: ${JSON.stringify(d)}`);
      assert.equal(d.rule, rule, `${name}: ${JSON.stringify(d)}`);
    });
  }

  it('says why a restrictive rule reached a request that does not name what it names', () => {
    const msg = (a: Action) => evaluate(a, restrictive, protection).message;
    assert.equal(
      msg(k({ verb: 'watch', resource: 'configmaps' })),
      'denied by locked-configmaps (this watch names no namespace, so it reaches namespace "locked" too; watch within a namespace the rule does not name instead)',
    );
    assert.equal(
      msg(k({ verb: 'list', resource: 'services', namespace: 'open' })),
      'denied by api-service (this list names no object, so it reaches services "api" too; name one object the rule does not name instead)',
    );
    assert.equal(
      msg(
        k({
          verb: 'patch',
          apiGroup: 'apps',
          resource: 'deployments',
          subresource: 'scale',
          namespace: 'a',
          name: 'w',
        }),
      ),
      'denied by no-deployment-patches (deployments/scale is part of deployments, which the rule names)',
    );
    assert.equal(
      msg(k({ nonResourceURL: '/logs/x' })),
      'denied by no-logs (/logs/x lies under "/logs", "/debug/pprof/", which the rule names)',
    );
    assert.equal(
      msg(k({ verb: 'list', resource: 'secrets' })),
      'allowed with masking by vault-secrets (this list names no namespace, so it reaches namespace "vault" too)',
    );
    // A request that names what the rule names gets the rule's message alone.
    assert.equal(
      msg(k({ resource: 'configmaps', namespace: 'locked', name: 'cm1' })),
      'denied by locked-configmaps',
    );
    assert.equal(msg(k({ nonResourceURL: '/logs' })), 'denied by no-logs');
  });

  it('a mask rule that covers a cluster-wide list keeps its own fields', () => {
    const d = evaluate(k({ verb: 'list', resource: 'secrets' }), restrictive, protection);
    assert.deepEqual(d.maskFields, ['data', 'stringData', 'metadata']);
  });
});
