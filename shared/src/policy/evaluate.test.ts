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
      mask: { fields: [email, ssn] }
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
    assert.equal(
      evaluate(
        k({ verb: 'patch', apiGroup: 'apps', resource: 'deployments', subresource: 'scale' }),
        policy,
        protection,
      ).reviewTimeoutMs,
      120_000,
    );
    assert.equal(evaluate(x(['psql'], 'db'), policy, protection).reviewTimeoutMs, 30_000);
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
