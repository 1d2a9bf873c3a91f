import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { checkHidingWorks, directoriesToHide, hiddenCommand } from './hide-kubeconfig.ts';

describe('--hide-kubeconfig', () => {
  const keep = { cwd: '/work/project', stateDir: '/home/me/.local/state/chaperone', home: '/home/me' };

  it('covers the kubeconfig files’ directories, once each', () => {
    assert.deepEqual(
      directoriesToHide(
        ['/home/me/.kube/config', '/home/me/.kube/other', '/home/me/.kube/clusters/a', '/etc/k/c'],
        keep,
      ),
      ['/etc/k', '/home/me/.kube'],
    );
  });

  it('refuses to cover what the agent needs', () => {
    assert.throws(() => directoriesToHide(['/home/me/config'], keep), /holds the state directory/);
    assert.throws(() => directoriesToHide(['/work/project/kubeconfig'], keep), /holds the working directory/);
    assert.throws(() => directoriesToHide(['/work/kubeconfig'], keep), /holds the working directory/);
  });

  it('maps a user other than root back to its own uid before the command runs', () => {
    const argv = hiddenCommand(['/home/me/.kube'], ['kubectl', 'get', 'pods'], { uid: 1000, gid: 1000 });
    assert.deepEqual(argv.slice(0, 2), ['unshare', '--user']);
    assert.deepEqual(argv.slice(-8), [
      'unshare',
      '--user',
      '--map-user=1000',
      '--map-group=1000',
      '--',
      'kubectl',
      'get',
      'pods',
    ]);
  });

  it('hides a directory from the command and from nothing else (run where a mount namespace can be made)', (t) => {
    const who = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    try {
      checkHidingWorks(who);
    } catch (err) {
      // Where the system forbids it, the check must say so (the session then does not start).
      assert.match((err as Error).message, /needs a private mount namespace/);
      t.diagnostic('no private mount namespace here: only the refusal was checked');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'hide-'));
    try {
      mkdirSync(join(dir, 'kube'));
      writeFileSync(join(dir, 'kube', 'config'), 'secret');
      const argv = hiddenCommand(
        [join(dir, 'kube')],
        ['sh', '-c', `ls -A ${dir}/kube; cat ${dir}/other`],
        who,
      );
      writeFileSync(join(dir, 'other'), 'visible');
      const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, 'visible');
      assert.equal(spawnSync('cat', [join(dir, 'kube', 'config')], { encoding: 'utf8' }).stdout, 'secret');
      if (who.uid !== 0) return;
      // As root, the way a user other than root goes is tried too (as nobody), where user namespaces are allowed.
      chmodSync(dir, 0o755);
      const nobody = { uid: 65534, gid: 65534 };
      const asNobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
      const probe = spawnSync(asNobody[0] as string, [...asNobody.slice(1), 'unshare', '--user', 'true']);
      if (probe.status !== 0) {
        t.diagnostic('no unprivileged user namespaces here: the way a user other than root goes was not run');
        return;
      }
      const cmd = [
        ...asNobody,
        ...hiddenCommand([join(dir, 'kube')], ['sh', '-c', `id -u; ls -A ${dir}/kube`], nobody),
      ];
      const n = spawnSync(cmd[0] as string, cmd.slice(1), { encoding: 'utf8' });
      assert.equal(n.status, 0, n.stderr);
      assert.equal(n.stdout, '65534\n', 'the command runs as the user, and sees an empty directory');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
