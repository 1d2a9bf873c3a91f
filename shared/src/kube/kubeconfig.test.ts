import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { ConfigError } from '../errors.ts';
import { kubeconfigConnection } from './kubeconfig.ts';

const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-'));
const b64 = (s: string) => Buffer.from(s).toString('base64');

function write(name: string, doc: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, YAML.stringify(doc));
  return path;
}

/** A one-context kubeconfig whose user is `user` and whose cluster has `cluster` added. */
function kubeconfig(
  name: string,
  user: Record<string, unknown>,
  cluster: Record<string, unknown> = {},
): string {
  return write(name, {
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
  });
}

describe('kubeconfig connections', () => {
  it('reads the server, CA, namespace and a token', async () => {
    const c = kubeconfigConnection(kubeconfig('token', { token: 't0k3n' }));
    assert.equal(c.server, 'https://127.0.0.1:6443');
    assert.equal(c.ca, 'CA');
    assert.equal(c.namespace, 'agents');
    assert.deepEqual(await c.credentials.current(), { token: 't0k3n' });
    assert.match(c.source, /kubeconfig .*token \(context ctx\)/);
  });

  it('reads client certificates inline or from files relative to the kubeconfig, inline first', async () => {
    mkdirSync(join(dir, 'pki'), { recursive: true });
    writeFileSync(join(dir, 'pki', 'client.crt'), 'CERT');
    writeFileSync(join(dir, 'pki', 'client.key'), 'KEY');
    writeFileSync(join(dir, 'pki', 'ca.crt'), 'FILE-CA');
    const files = kubeconfigConnection(
      kubeconfig(
        'files',
        { 'client-certificate': 'pki/client.crt', 'client-key': 'pki/client.key' },
        {
          'certificate-authority': 'pki/ca.crt',
          'certificate-authority-data': undefined,
          'tls-server-name': 'api',
        },
      ),
    );
    assert.deepEqual(await files.credentials.current(), { clientCert: 'CERT', clientKey: 'KEY' });
    assert.equal(files.ca, 'FILE-CA');
    assert.equal(files.tlsServerName, 'api');
    const inline = kubeconfigConnection(
      kubeconfig('inline', {
        'client-certificate-data': b64('C2'),
        'client-key-data': b64('K2'),
        'client-certificate': 'pki/client.crt',
      }),
    );
    assert.deepEqual(await inline.credentials.current(), { clientCert: 'C2', clientKey: 'K2' });
    assert.throws(
      () => kubeconfigConnection(kubeconfig('missing-file', { 'client-certificate': 'nope.crt' })),
      (err: unknown) =>
        err instanceof ConfigError && /cannot read the client certificate .*nope\.crt/.test(err.message),
    );
  });

  it('reads a token file (relative to the kubeconfig); an inline token wins', async () => {
    writeFileSync(join(dir, 'tok'), 'from-file\n');
    assert.deepEqual(
      await kubeconfigConnection(kubeconfig('tokenfile', { tokenFile: 'tok' })).credentials.current(),
      {
        token: 'from-file',
      },
    );
    assert.deepEqual(
      await kubeconfigConnection(
        kubeconfig('both', { tokenFile: 'tok', token: 'inline' }),
      ).credentials.current(),
      { token: 'inline' },
    );
  });

  it("runs an exec plugin, whose token wins over the file's, keeping the file's client certificate", async () => {
    writeFileSync(
      join(dir, 'plugin.sh'),
      `#!/bin/sh\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-plugin"}}'\n`,
      { mode: 0o755 },
    );
    const c = kubeconfigConnection(
      kubeconfig('exec', {
        token: 'static',
        'client-certificate-data': b64('C'),
        'client-key-data': b64('K'),
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1',
          command: './plugin.sh',
          interactiveMode: 'Never',
        },
      }),
      { env: { PATH: process.env.PATH } },
    );
    assert.deepEqual(await c.credentials.current(), {
      token: 'from-plugin',
      clientCert: 'C',
      clientKey: 'K',
    });
  });

  it('uses an explicit context instead of current-context', async () => {
    const path = write('contexts', {
      'current-context': 'one',
      contexts: [
        { name: 'one', context: { cluster: 'c1', user: 'u1' } },
        { name: 'two', context: { cluster: 'c2', user: 'u2', namespace: 'ns2' } },
      ],
      clusters: [
        { name: 'c1', cluster: { server: 'https://one:6443' } },
        { name: 'c2', cluster: { server: 'https://two:6443' } },
      ],
      users: [
        { name: 'u1', user: { token: 'one' } },
        { name: 'u2', user: { token: 'two' } },
      ],
    });
    assert.equal(kubeconfigConnection(path).server, 'https://one:6443');
    assert.equal(kubeconfigConnection(path).context, 'one');
    const two = kubeconfigConnection(path, { context: 'two' });
    assert.equal(two.server, 'https://two:6443');
    assert.equal(two.namespace, 'ns2');
    assert.equal(two.context, 'two');
    assert.deepEqual(await two.credentials.current(), { token: 'two' });
    assert.throws(() => kubeconfigConnection(path, { context: 'three' }), /context "three" not found/);
  });

  it('merges a $KUBECONFIG list: first file to name an entry wins, paths relative to their own file', async () => {
    mkdirSync(join(dir, 'a'), { recursive: true });
    mkdirSync(join(dir, 'b'), { recursive: true });
    writeFileSync(join(dir, 'b', 'ca.crt'), 'CA-OF-B');
    const a = write('a/config', {
      contexts: [{ name: 'prod', context: { cluster: 'prod', user: 'admin' } }],
      users: [{ name: 'admin', user: { token: 'from-a' } }],
    });
    const b = write('b/config', {
      'current-context': 'prod',
      contexts: [{ name: 'prod', context: { cluster: 'elsewhere', user: 'nobody' } }],
      clusters: [
        { name: 'prod', cluster: { server: 'https://prod:6443', 'certificate-authority': 'ca.crt' } },
      ],
      users: [{ name: 'admin', user: { token: 'from-b' } }],
    });
    const c = kubeconfigConnection([join(dir, 'missing'), a, b], { skipMissing: true });
    assert.equal(c.server, 'https://prod:6443', "b's current-context, a's context, b's cluster");
    assert.equal(c.ca, 'CA-OF-B', "the CA path is relative to b's directory");
    assert.deepEqual(await c.credentials.current(), { token: 'from-a' });
    assert.throws(() => kubeconfigConnection([join(dir, 'missing')]), /cannot read kubeconfig/);
    assert.throws(
      () => kubeconfigConnection([join(dir, 'missing')], { skipMissing: true }),
      /none of these files exists/,
    );
  });

  it('refuses what it cannot use, saying what to use instead', () => {
    assert.throws(
      () => kubeconfigConnection(kubeconfig('ap', { 'auth-provider': { name: 'gcp' } })),
      /auth-provider plugin/,
    );
    assert.throws(
      () => kubeconfigConnection(kubeconfig('basic', { username: 'admin', password: 'x' })),
      /basic authentication .*use a token/,
    );
    assert.throws(
      () =>
        kubeconfigConnection(
          write('noserver', {
            'current-context': 'x',
            contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
          }),
        ),
      /cluster "c" not found or has no server/,
    );
    writeFileSync(join(dir, 'broken'), 'clusters: [');
    assert.throws(() => kubeconfigConnection(join(dir, 'broken')), /cannot read kubeconfig .*broken/);
  });
});
