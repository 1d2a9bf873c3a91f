// Port-forward rules through the evaluator, as a table: restrictive rules
// match any listed port, allow rules only when every port is listed, and a
// SPDY session whose ports are not known yet opens only where an allow rule
// could let some port through.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluate } from './evaluate.ts';
import { parsePolicy } from './parse.ts';
import { parsePortEntry, portIn } from './port-match.ts';
import type { Action, SelfProtection } from './types.ts';

const protection: SelfProtection = {
  namespace: 'agents',
  policyConfigMaps: ['chaperone-policy'],
  sidecarContainer: 'chaperone-sidecar',
  pod: 'agent-0',
};

const policy = parsePolicy(`
apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: ports }
spec:
  defaultAction: deny
  rules:
    - name: no-ssh
      match: { portForward: { ports: [22, "2200-2299"] } }
      action: deny
      message: no ssh
    - name: web-ports
      match: { names: [web], portForward: { ports: [8080, "8000-8099"] } }
      action: allow
    - name: any-port-of-cache
      match: { names: [cache], portForward: {} }
      action: allow
`);

/** A port-forward to `pod`; `ports` undefined as when a SPDY session opens. */
function pf(pod: string, ports?: number[]): Action {
  return {
    protocol: 'exec',
    verb: 'create',
    apiGroup: '',
    resource: 'pods',
    subresource: 'portforward',
    namespace: 'apps',
    name: pod,
    exec: { kind: 'portforward', argv: [], ...(ports ? { ports } : {}) },
  };
}

const table: [string, Action, string, string][] = [
  ['a listed port', pf('web', [8080]), 'allow', 'web-ports'],
  ['a port in a listed range', pf('web', [8050]), 'allow', 'web-ports'],
  ['every port listed', pf('web', [8080, 8000]), 'allow', 'web-ports'],
  // Fails if allow rules matched any listed port instead of every one.
  ['one port not listed: the allow rule does not hold', pf('web', [8080, 9000]), 'deny', 'default'],
  // Fails if restrictive rules needed every port listed.
  ['one denied port among allowed ones', pf('web', [8080, 22]), 'deny', 'no-ssh'],
  ['a port in a denied range', pf('web', [2250]), 'deny', 'no-ssh'],
  ['a SPDY session opening (no port yet) where some port may be allowed', pf('web'), 'allow', 'web-ports'],
  ['an empty ports list reads as none known yet', pf('web', []), 'allow', 'web-ports'],
  ['a SPDY session opening on a pod no rule allows', pf('db'), 'deny', 'default'],
  ['portForward without ports: any port', pf('cache', [22222]), 'allow', 'any-port-of-cache'],
  ['… but a denied port still loses', pf('cache', [22]), 'deny', 'no-ssh'],
  [
    'an exec is not a port-forward',
    { ...pf('cache'), subresource: 'exec', exec: { kind: 'exec', argv: ['ls'] } },
    'deny',
    'default',
  ],
];

describe('port-forward rules', () => {
  for (const [name, action, expected, rule] of table) {
    it(name, () => {
      const d = evaluate(action, policy, protection);
      assert.equal(d.action, expected, JSON.stringify(d));
      assert.equal(d.rule, rule);
    });
  }

  it('reads ports and ranges, and refuses what is neither', () => {
    assert.deepEqual(parsePortEntry(8080), { from: 8080, to: 8080 });
    assert.deepEqual(parsePortEntry('443'), { from: 443, to: 443 });
    assert.deepEqual(parsePortEntry('8000-8999'), { from: 8000, to: 8999 });
    for (const bad of [0, 65536, 1.5, '0x50', '80-', '-80', 'http', '1-70000', null]) {
      assert.equal(typeof parsePortEntry(bad), 'string', String(bad));
    }
    assert.equal(portIn([{ from: 10, to: 20 }], 20), true);
    assert.equal(portIn([{ from: 10, to: 20 }], 21), false);
  });
});
