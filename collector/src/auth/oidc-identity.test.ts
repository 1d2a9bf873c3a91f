import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { oidcIdentity } from './oidc-identity.ts';

describe('OIDC approver identity', () => {
  it('prefixes the user and every group as the API server does', () => {
    assert.deepEqual(
      oidcIdentity('dana', ['sre', 'dev'], { usernamePrefix: 'oidc:', groupsPrefix: 'oidc:' }),
      {
        user: 'oidc:dana',
        groups: ['oidc:sre', 'oidc:dev'],
      },
    );
    assert.deepEqual(oidcIdentity('dana', ['sre'], { usernamePrefix: '-', groupsPrefix: '' }), {
      user: 'dana',
      groups: ['sre'],
    });
    // A prefix keeps a system: claim from reaching SubjectAccessReview as itself.
    assert.deepEqual(
      oidcIdentity('system:admin', ['system:masters'], { usernamePrefix: 'idp:', groupsPrefix: 'idp:' }),
      { user: 'idp:system:admin', groups: ['idp:system:masters'] },
    );
  });

  it('refuses a user or group that starts with system: after prefixing', () => {
    const none = { usernamePrefix: '-', groupsPrefix: '-' };
    assert.throws(
      () => oidcIdentity('system:kube-controller-manager', [], none),
      (e: { code?: string; message: string }) =>
        e.code === 'forbidden' && /--oidc-username-prefix/.test(e.message),
    );
    assert.throws(
      () => oidcIdentity('dana', ['sre', 'system:masters'], none),
      (e: { code?: string; message: string }) =>
        e.code === 'forbidden' && /group system:masters .*--oidc-groups-prefix/.test(e.message),
    );
    assert.throws(
      () => oidcIdentity('x', ['masters'], { usernamePrefix: '-', groupsPrefix: 'system:' }),
      /system:/,
    );
    assert.throws(
      () => oidcIdentity('admin', [], { usernamePrefix: 'system:', groupsPrefix: '-' }),
      /system:/,
    );
  });
});
