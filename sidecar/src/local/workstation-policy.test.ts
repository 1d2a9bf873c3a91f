import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluate, parsePolicy } from '@chaperone/shared/policy';
import { parseRequest } from '../policy-request.ts';
import { WORKSTATION_POLICY } from './workstation-policy.ts';

const protection = { namespace: 'dev', policyConfigMaps: ['chaperone-policy'], sidecarContainer: 'x' };

describe('the workstation policy', () => {
  const policy = parsePolicy(WORKSTATION_POLICY);
  const cases: [string, string, string][] = [
    ['delete deployments web -g apps -n dev', 'deny', 'no-workload-deletes'],
    ['delete statefulsets db -g apps -n dev', 'deny', 'no-workload-deletes'],
    ['delete cronjobs nightly -g batch -n dev', 'deny', 'no-workload-deletes'],
    ['get secrets db -n dev', 'mask', 'mask-secret-values'],
    ['list secrets -n dev', 'mask', 'mask-secret-values'],
    ['get pods web-1 -n dev', 'allow', 'default'],
    ['delete pods web-1 -n dev', 'allow', 'default'],
    ['patch deployments web -g apps -n dev', 'allow', 'default'],
  ];
  for (const [request, action, rule] of cases) {
    it(`${request}: ${action}`, async () => {
      const d = evaluate(await parseRequest(request), policy, protection);
      assert.equal(d.action, action);
      assert.equal(d.rule, rule);
    });
  }

  it('refuses namespace deletes (by the built-in rule, which comes first, or its own)', async () => {
    const d = evaluate(await parseRequest('delete namespaces dev'), policy, protection);
    assert.equal(d.action, 'deny');
  });
});
