import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kubeconfigFiles, parseDatabaseFlags } from './local-session.ts';
import { localStateDir } from './state-dir.ts';

describe('local session settings', () => {
  it('reads --database name=url, and refuses anything else without echoing the URL', () => {
    const [d] = parseDatabaseFlags(['shop=postgresql://app:pw@db:5432/shop']);
    assert.equal(d?.name, 'shop');
    assert.equal(d?.url.hostname, 'db');
    for (const bad of ['shop', '=postgresql://a@b/c', 'shop=mysql://app:pw@db/shop', 'shop=not a url']) {
      assert.throws(
        () => parseDatabaseFlags([bad]),
        (err: Error) => /expected name=postgresql:/.test(err.message) && !err.message.includes('pw@'),
      );
    }
  });

  it('finds the kubeconfig files as kubectl does', () => {
    assert.deepEqual(kubeconfigFiles({ HOME: '/home/me' }), {
      files: ['/home/me/.kube/config'],
      fromEnv: false,
    });
    assert.deepEqual(kubeconfigFiles({ HOME: '/home/me', KUBECONFIG: '/a:/b' }), {
      files: ['/a', '/b'],
      fromEnv: true,
    });
    assert.deepEqual(kubeconfigFiles({ KUBECONFIG: '/a' }, '/c'), { files: ['/c'], fromEnv: false });
  });

  it('keeps its state where the XDG base directory specification says', () => {
    assert.equal(localStateDir({ HOME: '/home/me' }), '/home/me/.local/state/chaperone');
    assert.equal(localStateDir({ HOME: '/home/me', XDG_STATE_HOME: '/xdg' }), '/xdg/chaperone');
    assert.equal(localStateDir({ HOME: '/home/me' }, '/s'), '/s');
  });
});
