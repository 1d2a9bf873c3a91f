import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { approvalFingerprint } from '@chaperone/shared';
import { kubeHeld, sqlHeld } from './held-action.ts';

describe('held actions', () => {
  it('describes a Kubernetes request by verb and object', () => {
    const h = kubeHeld({
      protocol: 'kubernetes',
      verb: 'patch',
      apiGroup: 'apps',
      resource: 'deployments',
      subresource: 'scale',
      namespace: 'shop',
      name: 'web',
      user: 'system:serviceaccount:shop:agent',
    });
    assert.equal(h.protocol, 'kubernetes');
    // Who the agent is comes from the verified token, never from the request.
    assert.deepEqual(h.action, {
      verb: 'patch',
      apiGroup: 'apps',
      resource: 'deployments',
      subresource: 'scale',
      namespace: 'shop',
      name: 'web',
    });
    assert.equal(h.summary, 'patch deployments.apps/scale web -n shop');
  });

  it('describes an exec session by its argv and container', () => {
    const h = kubeHeld({
      protocol: 'exec',
      verb: 'create',
      resource: 'pods',
      subresource: 'exec',
      namespace: 'shop',
      name: 'web-0',
      exec: { kind: 'exec', argv: ['sh', '-c', 'rm -rf /tmp/x'], container: 'main', tty: false },
    });
    assert.equal(h.protocol, 'exec');
    assert.deepEqual(h.action, {
      verb: 'exec',
      namespace: 'shop',
      name: 'web-0',
      argv: ['sh', '-c', 'rm -rf /tmp/x'],
      container: 'main',
    });
    assert.equal(h.summary, 'exec -n shop web-0 -c main -- sh -c rm -rf /tmp/x');
  });

  it('names a non-resource request by its path', () => {
    const h = kubeHeld({ protocol: 'kubernetes', verb: 'get', nonResourceURL: '/logs/kube.log' });
    assert.deepEqual(h.action, { verb: 'get', name: '/logs/kube.log' });
  });

  it('gives the same action the same fingerprint, whatever members were left empty', () => {
    const a = kubeHeld({
      protocol: 'kubernetes',
      verb: 'delete',
      apiGroup: '',
      resource: 'pods',
      namespace: 'a',
      name: 'p',
    });
    const b = kubeHeld({
      protocol: 'kubernetes',
      verb: 'delete',
      resource: 'pods',
      namespace: 'a',
      name: 'p',
    });
    assert.equal(approvalFingerprint(a.protocol, a.action), approvalFingerprint(b.protocol, b.action));
  });

  it('describes a SQL statement normalised, with its database', () => {
    const h = sqlHeld('DeleteStmt', 'DELETE FROM orders\n  WHERE id = $1', 'app');
    assert.deepEqual(h.action, {
      verb: 'DeleteStmt',
      sql: 'DELETE FROM orders\n  WHERE id = $1',
      database: 'app',
    });
    assert.equal(h.summary, 'app: DELETE FROM orders WHERE id = $1');
  });
});
