// Credential custody on a control plane with legacy Secret-based token
// volumes (`<serviceaccount>-token-xxxxx`, BoundServiceAccountTokenVolume
// off), the other form the ServiceAccount admission plugin produces. This
// file starts its own control plane for that.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { custodyViolations, type Pod } from '@chaperone/injector';
import { type ControlPlane, startControlPlane } from './control-plane.ts';
import {
  deleteNamespace,
  type Injector,
  optInNamespace,
  plainNamespace,
  podManifest,
  startInjector,
  waitForServiceAccount,
  waitUntilInjecting,
} from './injector-harness.ts';
import { kubectl, kubectlJson } from './kubectl.ts';
import { waitFor } from './process.ts';

const SA_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
const existing = Boolean(process.env.CHAPERONE_E2E_KUBECONFIG);

describe('injector: legacy Secret token volumes', {
  skip: existing && 'needs a local control plane with legacy token volumes',
}, () => {
  let cp: ControlPlane;
  let inj: Injector;
  let ns: string;
  let plain: string;
  before(async () => {
    cp = await startControlPlane({ legacyTokenVolumes: true });
    inj = await startInjector(cp);
    ns = optInNamespace(cp, inj, 'legacy');
    plain = plainNamespace(cp, 'legacy-plain');
    // Legacy token Secrets are minted by the controller-manager after the ServiceAccount appears.
    for (const n of [ns, plain]) {
      await waitForServiceAccount(cp, n);
      await waitFor(
        async () =>
          (
            kubectlJson(cp.kubeconfigPath, ['get', 'serviceaccount', 'default', '-n', n, '-o', 'json']) as {
              secrets?: unknown[];
            }
          ).secrets?.length,
        { what: `the token Secret of ${n}/default`, timeoutMs: 30_000, intervalMs: 200 },
      );
    }
    await waitUntilInjecting(cp, ns);
  });
  after(async () => {
    if (cp) {
      deleteNamespace(cp, ns);
      deleteNamespace(cp, plain);
    }
    await inj?.cleanup();
    await cp?.stop();
  });

  const create = (namespace: string, name: string) => {
    const r = kubectl(cp.kubeconfigPath, ['create', '-n', namespace, '-f', '-'], {
      input: podManifest(name),
    });
    assert.equal(r.code, 0, r.stderr);
    return kubectlJson(cp.kubeconfigPath, ['get', 'pod', name, '-n', namespace, '-o', 'json']) as Pod;
  };

  it('without injection the pod mounts the <sa>-token-xxxxx Secret (the control)', () => {
    const pod = create(plain, 'control');
    const mount = pod.spec.containers[0]?.volumeMounts?.find((m) => m.mountPath === SA_PATH);
    assert.match(mount?.name ?? '', /^default-token-[a-z0-9]{5}$/);
    assert.ok(custodyViolations(pod).some((v) => v.includes('token Secret')));
  });

  it('the stored injected pod has no token Secret mount in any agent container', () => {
    const pod = create(ns, 'guarded');
    assert.equal(pod.spec.containers[0]?.name, 'chaperone-sidecar');
    assert.deepEqual(custodyViolations(pod), []);
    assert.ok(
      !pod.spec.volumes?.some((v) => /^default-token-/.test(v.secret?.secretName ?? '')),
      'the Secret volume is gone',
    );
    const status = JSON.parse(pod.metadata?.annotations?.['chaperone.dev/status'] ?? '{}') as {
      removedVolumes: string[];
    };
    assert.match(status.removedVolumes[0] ?? '', /^default-token-[a-z0-9]{5}$/);
    const agent = pod.spec.containers.find((c) => c.name === 'agent');
    assert.deepEqual(
      agent?.volumeMounts?.map((m) => m.name),
      ['chaperone-agent-sa'],
    );
    // The sidecar's own credentials: a projected token (accepted on 1.20 with an audience too).
    const token = pod.spec.volumes?.find((v) => v.name === 'chaperone-token');
    assert.equal(token?.projected?.sources.filter((s) => s.serviceAccountToken).length, 2);
  });
});
