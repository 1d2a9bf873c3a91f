import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inClusterConnection } from './in-cluster.ts';
import { resolveKubeConnection } from './resolve-connection.ts';
import { tokenFileCredentials } from './token-file.ts';

function serviceAccountDir(): string {
  const sa = mkdtempSync(join(tmpdir(), 'sa-'));
  writeFileSync(join(sa, 'ca.crt'), 'CLUSTER-CA');
  writeFileSync(join(sa, 'token'), 'sa-token\n');
  writeFileSync(join(sa, 'namespace'), 'chaperone-system');
  return sa;
}

const IN_CLUSTER = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };

describe('in-cluster and direct connections', () => {
  it('uses the service account: https://host:port, CA, token, namespace', async () => {
    const sa = serviceAccountDir();
    const c = inClusterConnection(IN_CLUSTER, sa);
    assert.equal(c.server, 'https://10.96.0.1:443');
    assert.equal(c.ca, 'CLUSTER-CA');
    assert.deepEqual(await c.credentials.current(), { token: 'sa-token' });
    assert.equal(c.namespace, 'chaperone-system');
    assert.equal(
      inClusterConnection({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, sa).server,
      'https://[fd00::1]:443',
    );
    assert.throws(() => inClusterConnection({}, sa), /not running in a cluster/);
    assert.throws(() => inClusterConnection(IN_CLUSTER, join(sa, 'nope')), /cannot read the cluster CA/);
  });

  it('re-reads a rotated token file once the re-read interval has passed, and at once after a refusal', () => {
    const sa = serviceAccountDir();
    const path = join(sa, 'token');
    let now = 0;
    const source = tokenFileCredentials(path, { now: () => now });
    assert.deepEqual(source.current(), { token: 'sa-token' });
    writeFileSync(path, 'rotated');
    utimesSync(path, new Date(), new Date(Date.now() + 5000)); // a new mtime, as the kubelet's rename gives
    now = 59_000;
    assert.deepEqual(source.current(), { token: 'sa-token' }, 'not re-read within the minute');
    now = 61_000;
    assert.deepEqual(source.current(), { token: 'rotated' });
    writeFileSync(path, 'rotated-again');
    source.refused?.();
    assert.deepEqual(source.current(), { token: 'rotated-again' }, 'a 401 makes the next call read the file');
    now = 200_000;
    writeFileSync(path, '');
    utimesSync(path, new Date(), new Date(Date.now() + 10_000));
    assert.deepEqual(source.current(), {}, 'an emptied file sends no token');
  });

  it('picks kubeconfig, then a named server, then in-cluster, then $KUBECONFIG, then ~/.kube/config', () => {
    const sa = serviceAccountDir();
    const home = mkdtempSync(join(tmpdir(), 'home-'));
    const kc = join(home, 'kc');
    writeFileSync(
      kc,
      'current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}, {name: y, context: {cluster: d, user: u}}]\nclusters: [{name: c, cluster: {server: "https://kc:1"}}, {name: d, cluster: {server: "https://kc:2"}}]\nusers: [{name: u, user: {token: t}}]\n',
    );
    const env = { ...IN_CLUSTER, KUBECONFIG: `/nope:${kc}`, HOME: home };
    assert.equal(resolveKubeConnection({ kubeconfig: kc, context: 'y' }, env).server, 'https://kc:2');
    const direct = resolveKubeConnection(
      { server: 'https://api:6443', caFile: join(sa, 'ca.crt'), inClusterDir: sa },
      env,
    );
    assert.equal(direct.server, 'https://api:6443');
    assert.equal(direct.ca, 'CLUSTER-CA');
    assert.equal(resolveKubeConnection({ inClusterDir: sa }, env).source, 'in-cluster service account');
    const noSa = join(sa, 'absent');
    assert.match(
      resolveKubeConnection({ inClusterDir: noSa }, env).source,
      /kubeconfig \/nope:.*kc \(context x\)/,
    );
    assert.equal(resolveKubeConnection({ inClusterDir: noSa, context: 'y' }, env).server, 'https://kc:2');
    assert.throws(
      () => resolveKubeConnection({ inClusterDir: noSa }, { HOME: home }),
      /no Kubernetes API to talk to/,
    );
    mkdirSync(join(home, '.kube'));
    copyFileSync(kc, join(home, '.kube', 'config'));
    assert.match(
      resolveKubeConnection({ inClusterDir: noSa }, { HOME: home }).source,
      /\.kube\/config \(context x\)/,
    );
    assert.throws(
      () => resolveKubeConnection({ server: 'api:6443' }, {}),
      /must be an https:\/\/ URL|not a URL/,
    );
  });
});
