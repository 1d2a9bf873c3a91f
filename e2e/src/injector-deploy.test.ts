// deploy/overlays/production (the injector with everything around it) renders with
// kustomize and every object is accepted by the real API server (server-side dry run:
// validation and admission, nothing stored). deploy-manifests.test.ts covers every overlay.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  desiredValidatingWebhookConfiguration,
  desiredWebhookConfiguration,
  injectionConfigFrom,
  injectorSchema,
  instanceName,
} from '@chaperone/injector';
import { parseConfig } from '@chaperone/shared';
import YAML from 'yaml';
import { kubeInfo } from './environment.ts';
import { deleteNamespace, plainNamespace, REPO_ROOT } from './injector-harness.ts';
import { kubectl } from './kubectl.ts';

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  subjects?: { namespace?: string }[];
  webhooks?: { clientConfig: { service?: { namespace: string } } }[];
}

const PRODUCTION = join(REPO_ROOT, 'deploy', 'overlays', 'production');

describe('deploy/ injector manifests (production overlay)', () => {
  const kube = kubeInfo();
  let ns: string;
  before(() => {
    ns = plainNamespace(kube, 'deploy');
  });
  after(() => deleteNamespace(kube, ns));

  it('render with kustomize: Deployment with 2 replicas, PDB, RBAC, Service, webhook configuration', () => {
    const r = kubectl('', ['kustomize', PRODUCTION]);
    assert.equal(r.code, 0, r.stderr);
    const objs = YAML.parseAllDocuments(r.stdout).map(
      (d) => d.toJS() as Obj & { spec?: { replicas?: number } },
    );
    const kinds = objs.map((o) => o.kind).sort();
    for (const k of [
      'ClusterRole',
      'ClusterRoleBinding',
      'Deployment',
      'MutatingWebhookConfiguration',
      'ValidatingWebhookConfiguration',
      'Namespace',
      'PodDisruptionBudget',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
    ]) {
      assert.ok(kinds.includes(k), `${k} is rendered`);
    }
    assert.equal(
      objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'chaperone-injector')?.spec?.replicas,
      2,
    );
    for (const o of objs) {
      if (
        o.kind !== 'Namespace' &&
        !o.kind.startsWith('Cluster') &&
        !o.kind.endsWith('WebhookConfiguration')
      ) {
        assert.equal(o.metadata.namespace, 'chaperone-system', `${o.kind} lands in chaperone-system`);
      }
    }
  });

  it('ship the webhook configurations the injector builds with its default settings', () => {
    const r = kubectl('', ['kustomize', PRODUCTION]);
    assert.equal(r.code, 0, r.stderr);
    const objs = YAML.parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj & { webhooks?: unknown[] });
    const s = parseConfig(injectorSchema('0.1.0'), { env: {} });
    const settings = {
      name: instanceName(s),
      namespace: s.namespace,
      serviceName: s.serviceName,
      servicePort: s.servicePort,
      path: s.webhookPath,
      validatePath: s.validatingWebhookPath,
      timeoutSeconds: s.webhookTimeoutSeconds,
      injection: injectionConfigFrom(s, '0.1.0', false),
    };
    for (const desired of [
      desiredWebhookConfiguration(settings, undefined),
      desiredValidatingWebhookConfiguration(settings, undefined),
    ]) {
      const shipped = objs.find((o) => o.kind === desired.kind);
      assert.ok(shipped, `${desired.kind} is shipped`);
      assert.equal(shipped.metadata.name, desired.metadata.name);
      assert.deepEqual(shipped.webhooks, desired.webhooks, `${desired.kind}: the YAML and the code agree`);
    }
  });

  it('are accepted by the API server (dry run)', () => {
    const r = kubectl('', ['kustomize', PRODUCTION]);
    assert.equal(r.code, 0, r.stderr);
    const v = kube.version;
    const objs = YAML.parseAllDocuments(r.stdout)
      .map((d) => d.toJS() as Obj)
      // The Namespace is not created by a dry run, so the rest goes into a test namespace;
      // policy/v1 PodDisruptionBudgets exist from Kubernetes 1.21.
      .filter((o) => o.kind !== 'Namespace')
      .filter((o) => !(o.apiVersion === 'policy/v1' && v.major === 1 && v.minor < 21))
      .map((o) => {
        const out = structuredClone(o);
        if (out.metadata.namespace) out.metadata.namespace = ns;
        if (out.subjects) out.subjects = out.subjects.map((s) => ({ ...s, namespace: ns }));
        return out;
      });
    const applied = kubectl(kube.kubeconfigPath, ['apply', '--dry-run=server', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }),
    });
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /deployment\.apps\/chaperone-injector created \(server dry run\)/);
    assert.match(
      applied.stdout,
      /mutatingwebhookconfiguration\.admissionregistration\.k8s\.io\/chaperone-injector created \(server dry run\)/,
    );
    assert.match(
      applied.stdout,
      /validatingwebhookconfiguration\.admissionregistration\.k8s\.io\/chaperone-injector created \(server dry run\)/,
    );
  });
});
