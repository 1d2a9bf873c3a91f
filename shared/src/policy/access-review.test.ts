import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accessReviewActions, decideAccessReview } from './access-review.ts';
import { parsePolicy } from './parse.ts';
import type { SelfProtection } from './types.ts';

const protection: SelfProtection = {
  namespace: 'agents',
  policyConfigMaps: ['chaperone-policy'],
  sidecarContainer: 'chaperone-sidecar',
};
const policy = parsePolicy(`
apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: t }
spec:
  defaultAction: allow
  rules:
    - { name: no-deploy-delete, match: { verbs: [delete], apiGroups: [apps], resources: [deployments] }, action: deny }
    - { name: hold-scale, match: { resources: [deployments/scale] }, action: review }
    - { name: no-metrics, match: { nonResourceURLs: ['/metrics'] }, action: deny }
`);
const USER = 'system:serviceaccount:agents:agent';

// [case, spec, expected rule or undefined (RBAC answers)]
const table: [string, unknown, string | undefined][] = [
  [
    'delete namespaces (built-in)',
    { resourceAttributes: { verb: 'delete', resource: 'namespaces' } },
    'chaperone-protect-namespaces',
  ],
  [
    'create serviceaccounts/token',
    {
      resourceAttributes: {
        verb: 'create',
        resource: 'serviceaccounts',
        subresource: 'token',
        namespace: 'x',
      },
    },
    'chaperone-no-token-request',
  ],
  [
    'delete deployments (policy)',
    { resourceAttributes: { verb: 'delete', group: 'apps', resource: 'deployments', namespace: 'agents' } },
    'no-deploy-delete',
  ],
  [
    'patch deployments/scale (review counts as no)',
    { resourceAttributes: { verb: 'patch', group: 'apps', resource: 'deployments', subresource: 'scale' } },
    'hold-scale',
  ],
  ['get pods', { resourceAttributes: { verb: 'get', resource: 'pods', namespace: 'agents' } }, undefined],
  [
    'get secrets (masked, still allowed)',
    { resourceAttributes: { verb: 'get', resource: 'secrets' } },
    undefined,
  ],
  [
    '* on namespaces: some verb is refused',
    { resourceAttributes: { verb: '*', resource: 'namespaces' } },
    'chaperone-protect-namespaces',
  ],
  ['get /metrics (policy)', { nonResourceAttributes: { verb: 'get', path: '/metrics' } }, 'no-metrics'],
  ['get /healthz', { nonResourceAttributes: { verb: 'get', path: '/healthz' } }, undefined],
  ['empty spec', {}, undefined],
  ['not an object', 'x', undefined],
];

describe('decideAccessReview', () => {
  for (const [name, spec, rule] of table) {
    it(name, () => {
      const d = decideAccessReview(spec, USER, policy, protection);
      assert.equal(d?.rule, rule, JSON.stringify(d));
    });
  }

  it('builds the Action the guard decides on, with the asking user', () => {
    assert.deepEqual(
      accessReviewActions(
        {
          resourceAttributes: {
            verb: 'update',
            group: 'apps',
            version: 'v1',
            resource: 'deployments',
            subresource: 'status',
            namespace: 'agents',
            name: 'web',
          },
        },
        USER,
      ),
      [
        {
          protocol: 'kubernetes',
          verb: 'update',
          apiGroup: 'apps',
          apiVersion: 'v1',
          namespace: 'agents',
          resource: 'deployments',
          subresource: 'status',
          name: 'web',
          user: USER,
        },
      ],
    );
    assert.equal(
      accessReviewActions({ resourceAttributes: { verb: '*', resource: 'pods' } }, USER).length,
      10,
    );
  });
});
