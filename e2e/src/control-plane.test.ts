// Real kube-apiserver + etcd + kube-controller-manager (started by the e2e
// global setup), driven by the real kubectl and @kubernetes/client-node.
// There is no kubelet, so Pods stay Pending: that is expected here.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { kubectl, kubectlJson } from './kubectl.ts';
import { waitFor } from './process.ts';

interface PodList {
  items: {
    metadata: { name: string };
    spec: {
      serviceAccountName?: string;
      volumes?: {
        name: string;
        projected?: { sources: Record<string, unknown>[] };
        secret?: { secretName: string };
      }[];
      containers: { name: string; volumeMounts?: { name: string; mountPath: string }[] }[];
    };
    status?: { phase?: string };
  }[];
}

function tokenVolume(pod: PodList['items'][number]) {
  const mount = pod.spec.containers[0]?.volumeMounts?.find(
    (m) => m.mountPath === '/var/run/secrets/kubernetes.io/serviceaccount',
  );
  return pod.spec.volumes?.find((v) => v.name === mount?.name);
}

describe('local control plane', () => {
  const kube = kubeInfo();
  let ns: TestNamespace;
  before(async () => {
    ns = await createNamespace('smoke');
  });
  after(async () => {
    await ns?.delete();
  });

  it('kubectl creates a Deployment whose Pod appears with the default ServiceAccount token volume', async () => {
    await waitFor(
      async () =>
        kubectl(kube.kubeconfigPath, ['get', 'serviceaccount', 'default', '-n', ns.name]).code === 0,
      { what: `the default ServiceAccount in ${ns.name}`, timeoutMs: 30_000, intervalMs: 250 },
    );
    const created = kubectl(kube.kubeconfigPath, [
      'create',
      'deployment',
      'web',
      '--image=nginx:1.27',
      '-n',
      ns.name,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const pod = await waitFor(
      async () =>
        (
          kubectlJson(kube.kubeconfigPath, [
            'get',
            'pods',
            '-n',
            ns.name,
            '-l',
            'app=web',
            '-o',
            'json',
          ]) as PodList
        ).items[0],
      { what: 'the Deployment to create a Pod', timeoutMs: 60_000, intervalMs: 250 },
    );
    assert.equal(pod.status?.phase, 'Pending');
    assert.equal(pod.spec.serviceAccountName, 'default');
    const vol = tokenVolume(pod);
    assert.ok(vol, 'the token volume is mounted at the service-account path');
    if (kube.mode === 'local' || vol.projected) {
      assert.match(vol.name, /^kube-api-access-/);
      const sources = vol.projected?.sources ?? [];
      assert.ok(
        sources.some((s) => 'serviceAccountToken' in s),
        'projected token source',
      );
      assert.ok(
        sources.some((s) => 'configMap' in s),
        'kube-root-ca.crt source',
      );
    }
  });

  it('@kubernetes/client-node creates a namespace and a Deployment', async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const name = `${ns.name}-js`;
    await core.createNamespace({ body: { metadata: { name, labels: { 'chaperone.dev/e2e': 'true' } } } });
    try {
      await waitFor(
        async () =>
          (await core.readNamespacedServiceAccount({ name: 'default', namespace: name })).metadata?.name,
        {
          what: 'the default ServiceAccount',
          timeoutMs: 30_000,
          intervalMs: 250,
        },
      ).catch(() => undefined);
      await apps.createNamespacedDeployment({
        namespace: name,
        body: {
          metadata: { name: 'agent' },
          spec: {
            replicas: 1,
            selector: { matchLabels: { app: 'agent' } },
            template: {
              metadata: { labels: { app: 'agent' } },
              spec: { containers: [{ name: 'agent', image: 'busybox:1.36', command: ['sleep', '3600'] }] },
            },
          },
        },
      });
      const pods = await waitFor(
        async () => {
          const list = await core.listNamespacedPod({ namespace: name, labelSelector: 'app=agent' });
          return list.items.length > 0 ? list.items : undefined;
        },
        { what: 'a Pod for the Deployment', timeoutMs: 60_000, intervalMs: 250 },
      );
      assert.equal(pods.length, 1);
      assert.equal(pods[0]?.status?.phase, 'Pending');
    } finally {
      await core.deleteNamespace({ name });
    }
  });

  it('issues service-account tokens that verify against the issuer JWKS', {
    skip: kube.mode !== 'local' && 'issuer discovery depends on the cluster',
  }, async () => {
    await waitFor(
      async () =>
        kubectl(kube.kubeconfigPath, ['get', 'serviceaccount', 'default', '-n', ns.name]).code === 0,
      { what: 'the default ServiceAccount', timeoutMs: 30_000, intervalMs: 250 },
    );
    const request = {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: ['chaperone-collector'], expirationSeconds: 600 },
    };
    const tr = kubectlJson(
      kube.kubeconfigPath,
      ['create', '--raw', `/api/v1/namespaces/${ns.name}/serviceaccounts/default/token`, '-f', '-'],
      JSON.stringify(request),
    ) as { status: { token: string } };
    const discovery = kubectlJson(kube.kubeconfigPath, [
      'get',
      '--raw',
      '/.well-known/openid-configuration',
    ]) as { issuer: string; jwks_uri: string };
    assert.equal(discovery.issuer, kube.serviceAccountIssuer);
    const jwks = kubectlJson(kube.kubeconfigPath, ['get', '--raw', '/openid/v1/jwks']) as Parameters<
      typeof createLocalJWKSet
    >[0];
    const { payload } = await jwtVerify(tr.status.token, createLocalJWKSet(jwks), {
      issuer: discovery.issuer,
      audience: 'chaperone-collector',
    });
    assert.equal(payload.sub, `system:serviceaccount:${ns.name}:default`);
    await assert.rejects(
      jwtVerify(tr.status.token, createLocalJWKSet(jwks), {
        issuer: discovery.issuer,
        audience: 'someone-else',
      }),
      /aud/,
    );
  });
});
