import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { inClusterConnection, kubeconfigConnection, resolveKubeConnection } from './kube-connection.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-connection-'));
const b64 = (s: string) => Buffer.from(s).toString('base64');

function kubeconfig(
  name: string,
  user: Record<string, unknown>,
  cluster: Record<string, unknown> = {},
): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    YAML.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'ctx',
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u', namespace: 'agents' } }],
      clusters: [
        {
          name: 'c',
          cluster: { server: 'https://127.0.0.1:6443/', 'certificate-authority-data': b64('CA'), ...cluster },
        },
      ],
      users: [{ name: 'u', user }],
    }),
  );
  return path;
}

describe('kube connections', () => {
  it('reads a token kubeconfig', () => {
    const c = kubeconfigConnection(kubeconfig('token', { token: 't0k3n' }));
    assert.equal(c.server, 'https://127.0.0.1:6443');
    assert.equal(c.ca, 'CA');
    assert.equal(c.token?.(), 't0k3n');
    assert.equal(c.namespace, 'agents');
  });
  it('reads client certificates, inline or from files relative to the kubeconfig', () => {
    writeFileSync(join(dir, 'client.crt'), 'CERT');
    writeFileSync(join(dir, 'client.key'), 'KEY');
    writeFileSync(join(dir, 'ca.crt'), 'FILE-CA');
    const files = kubeconfigConnection(
      kubeconfig(
        'files',
        { 'client-certificate': 'client.crt', 'client-key': 'client.key' },
        { 'certificate-authority': 'ca.crt', 'certificate-authority-data': undefined },
      ),
    );
    assert.equal(files.clientCert, 'CERT');
    assert.equal(files.clientKey, 'KEY');
    assert.equal(files.ca, 'FILE-CA');
    const inline = kubeconfigConnection(
      kubeconfig('inline', { 'client-certificate-data': b64('C2'), 'client-key-data': b64('K2') }),
    );
    assert.equal(inline.clientCert, 'C2');
    assert.equal(inline.token, undefined);
  });
  it('re-reads a token file', () => {
    writeFileSync(join(dir, 'tok'), 'first\n');
    const c = kubeconfigConnection(kubeconfig('tokenfile', { tokenFile: join(dir, 'tok') }));
    assert.equal(c.token?.(), 'first');
  });
  it('runs exec credential plugins (EKS, GKE, AKS kubeconfigs)', () => {
    const plugin = join(dir, 'plugin.sh');
    const body = (token: string) =>
      JSON.stringify({
        apiVersion: 'client.authentication.k8s.io/v1beta1',
        kind: 'ExecCredential',
        status: { token },
      });
    // Prints a token naming the env the plugin saw (its own variable and KUBERNETES_EXEC_INFO).
    writeFileSync(
      plugin,
      `#!/bin/sh\ncase "$KUBERNETES_EXEC_INFO" in *ExecCredential*) ;; *) exit 3;; esac\necho '${body('eks-PREFIX')}' | sed "s/PREFIX/$TOKEN_PREFIX/"\n`,
      { mode: 0o755 },
    );
    const c = kubeconfigConnection(
      kubeconfig('exec', {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1beta1',
          command: './plugin.sh',
          env: [{ name: 'TOKEN_PREFIX', value: 'abc' }],
        },
      }),
      { PATH: process.env.PATH },
    );
    assert.equal(c.token?.(), 'eks-abc');
    assert.throws(
      () =>
        kubeconfigConnection(
          kubeconfig('exec-missing', { exec: { command: 'no-such-plugin', installHint: 'install it' } }),
          {
            PATH: process.env.PATH,
          },
        ),
      /credential plugin "no-such-plugin" could not run: .*\(install it\)/,
    );
    assert.throws(
      () => kubeconfigConnection(kubeconfig('ap', { 'auth-provider': { name: 'gcp' } })),
      /auth-provider plugin/,
    );
  });
  it('uses the in-cluster service account', () => {
    const sa = mkdtempSync(join(tmpdir(), 'sa-'));
    writeFileSync(join(sa, 'ca.crt'), 'CLUSTER-CA');
    writeFileSync(join(sa, 'token'), 'sa-token');
    writeFileSync(join(sa, 'namespace'), 'chaperone-system');
    const c = inClusterConnection(
      { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
      sa,
    );
    assert.equal(c.server, 'https://10.96.0.1:443');
    assert.equal(c.token?.(), 'sa-token');
    assert.equal(c.namespace, 'chaperone-system');
    assert.equal(
      inClusterConnection({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, sa).server,
      'https://[fd00::1]:443',
    );
  });
  it('falls back to $KUBECONFIG, and says so when there is nothing', () => {
    const path = kubeconfig('env', { token: 'x' });
    assert.equal(
      resolveKubeConnection(undefined, { KUBECONFIG: `${path}:/nope` }).source.includes(path),
      true,
    );
    assert.throws(() => resolveKubeConnection(undefined, { HOME: dir }), /no Kubernetes API to talk to/);
  });
});
