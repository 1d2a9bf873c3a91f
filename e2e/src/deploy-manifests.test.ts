// deploy/ as a platform team applies it. Each overlay (dev, production) and production with
// every optional component build with the real `kubectl kustomize`, and the real API server
// accepts what they build in a server-side apply dry run (validation, defaulting and
// admission; nothing stored), after kubectl's own schema validation against the server's
// OpenAPI. Then, on what the overlays build: the production shape, pod security against the
// image's user (deploy/Dockerfile), the CHAPERONE_* environment against the injector's and
// collector's own config schemas, the NetworkPolicies' ports, the monitoring objects against
// the pods the injector really produces, and RBAC, by asking the API server what each role
// allows (SubjectAccessReview).
//
// The Prometheus Operator's kinds (ServiceMonitor, PodMonitor, PrometheusRule) are unknown to
// the local API server: when the cluster lacks them, the test installs
// e2e/testdata/prometheus-operator-crds.yaml, CRDs written for this test with the operator's
// types for the fields Chaperone's objects use, and removes them afterwards. A field those
// schemas do not define is pruned by the API server, which the test reports. The rules'
// PromQL is not parsed here (the operator's admission webhook does that in a cluster).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { COLLECTOR_SCHEMA } from '@chaperone/collector';
import {
  INJECT_ENABLED,
  INJECT_LABEL,
  injectionConfigFrom,
  injectorSchema,
  instanceName,
  type Container as KubeContainer,
  type PodSpec as KubePodSpec,
  mutate,
  type Pod,
  SIDECAR_NAME,
} from '@chaperone/injector';
import { parseConfig } from '@chaperone/shared';
import YAML from 'yaml';
import { createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { REPO_ROOT } from './injector-harness.ts';
import { kubectl } from './kubectl.ts';

const DEPLOY = join(REPO_ROOT, 'deploy');
const NAMESPACE = 'chaperone-system';
const CRD_FILE = join(REPO_ROOT, 'e2e', 'testdata', 'prometheus-operator-crds.yaml');
const MONITORING_GROUP = 'monitoring.coreos.com';
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
]);
const VERSION = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'injector', 'package.json'), 'utf8')) as {
    version: string;
  }
).version;

type Labels = Record<string, string>;
interface Meta {
  name: string;
  namespace?: string;
  labels?: Labels;
  annotations?: Labels;
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  spec?: unknown;
  roleRef?: { apiGroup?: string; kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}
/** The injector's pod model, with the fields only the manifests set. */
interface Container extends KubeContainer {
  resources?: { requests?: Labels; limits?: Labels };
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    privileged?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
}
interface PodSpec extends KubePodSpec {
  containers: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
  affinity?: {
    podAntiAffinity?: {
      preferredDuringSchedulingIgnoredDuringExecution?: {
        podAffinityTerm: { topologyKey: string; labelSelector: { matchLabels: Labels } };
      }[];
    };
  };
}
interface DeploymentSpec {
  replicas?: number;
  strategy?: { type?: string };
  selector: { matchLabels: Labels };
  template: { metadata: { labels?: Labels; annotations?: Labels }; spec: PodSpec };
}
interface NetworkPolicySpec {
  podSelector: {
    matchLabels?: Labels;
    matchExpressions?: { key: string; operator: string; values: string[] }[];
  };
  policyTypes: string[];
  ingress?: {
    from?: { namespaceSelector?: { matchLabels?: Labels }; podSelector?: { matchLabels?: Labels } }[];
    ports?: { port: string | number }[];
  }[];
}

/** kubectl kustomize of a directory, as objects. */
function kustomize(dir: string): K8sObject[] {
  const r = kubectl('', ['kustomize', dir]);
  assert.equal(r.code, 0, `kubectl kustomize ${relative(REPO_ROOT, dir)}: ${r.stderr}`);
  return YAML.parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject);
}

function find(objs: readonly K8sObject[], kind: string, name: string): K8sObject {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} is built`);
  return o;
}

const deploymentSpec = (objs: readonly K8sObject[], name: string) =>
  find(objs, 'Deployment', name).spec as DeploymentSpec;

function onlyContainer(spec: DeploymentSpec): Container {
  assert.equal(spec.template.spec.containers.length, 1);
  return spec.template.spec.containers[0] as Container;
}

const subset = (want: Labels | undefined, have: Labels | undefined) =>
  Object.entries(want ?? {}).every(([k, v]) => have?.[k] === v);

/**
 * A container's CHAPERONE_* environment as the process would see it: field references
 * resolved for a pod in chaperone-system, Secret references replaced by a stand-in value.
 */
function environment(c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    const secret = e.valueFrom?.secretKeyRef as { name: string; key: string } | undefined;
    env[e.name] =
      e.value ??
      (field === 'metadata.namespace'
        ? NAMESPACE
        : field === 'metadata.name'
          ? 'chaperone-injector-7d9f8-x2x4q'
          : secret
            ? `stand-in for Secret ${secret.name} key ${secret.key}`
            : '');
  }
  return env;
}

function injectorSettings(objs: readonly K8sObject[]) {
  return parseConfig(injectorSchema(VERSION), {
    env: environment(onlyContainer(deploymentSpec(objs, 'chaperone-injector'))),
  });
}

function collectorSettings(objs: readonly K8sObject[]) {
  return parseConfig(COLLECTOR_SCHEMA, {
    env: environment(onlyContainer(deploymentSpec(objs, 'chaperone-collector'))),
  });
}

/** The pod the injector, configured as the manifests configure it, makes of a plain agent pod. */
function injectedPod(objs: readonly K8sObject[]): Pod {
  const agent = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'agent', namespace: 'agents' },
    spec: { containers: [{ name: 'agent', image: 'agent:1' }] },
  } as Pod;
  const r = mutate(agent, injectionConfigFrom(injectorSettings(objs), VERSION, true), {
    namespace: 'agents',
  });
  assert.deepEqual(r.skipReasons, []);
  return r.pod;
}

function sidecarOf(pod: Pod): Container {
  const all: Container[] = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
  const s = all.find((c) => c.name === SIDECAR_NAME);
  assert.ok(s, 'the injected pod has the sidecar');
  return s;
}

/** deploy/Dockerfile's final stage: its USER, which must be a numeric UID for runAsNonRoot. */
function imageUser(): number {
  const text = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
  const finalStage = text.slice(text.lastIndexOf('\nFROM '));
  const users = [...finalStage.matchAll(/^USER\s+(\S+)\s*$/gm)].map((m) => m[1] as string);
  assert.equal(users.length, 1, 'the final stage sets USER once');
  const m = /^(\d+)(?::\d+)?$/.exec(users[0] as string);
  assert.ok(m, `USER ${users[0]} is numeric (the kubelet cannot check runAsNonRoot against a name)`);
  return Number(m[1]);
}

/** Server-side apply of `objs` as a dry run; stdout is what the API server would store. */
function dryRun(kubeconfig: string, objs: readonly K8sObject[], cacheDir: string) {
  return kubectl(
    kubeconfig,
    [
      'apply',
      '--server-side',
      '--force-conflicts',
      '--field-manager=chaperone-deploy-test',
      '--dry-run=server',
      `--cache-dir=${cacheDir}`,
      '-o',
      'json',
      '-f',
      '-',
    ],
    { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }) },
  );
}

interface AccessRow {
  /** ServiceAccount name in the test namespace. */
  readonly who: string;
  readonly verb: string;
  readonly group?: string;
  readonly resource: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly allowed: boolean;
}

/** Rows of `who verb resource[.group] namespace name yes|no`; `-` for none, `#` comments. */
function accessTable(namespace: string, text: string): AccessRow[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const f = line.replaceAll('$ns', namespace).split(/\s+/);
      assert.equal(f.length, 6, `access row: ${line}`);
      const [who, verb, qualified, ns, name, answer] = f as [string, string, string, string, string, string];
      const dot = qualified.indexOf('.');
      return {
        who,
        verb,
        resource: dot === -1 ? qualified : qualified.slice(0, dot),
        ...(dot === -1 ? {} : { group: qualified.slice(dot + 1) }),
        ...(ns === '-' ? {} : { namespace: ns }),
        ...(name === '-' ? {} : { name }),
        allowed: answer === 'yes',
      };
    });
}

describe('deploy/ manifests', () => {
  const kube = kubeInfo();
  let ns: TestNamespace;
  let work: string;
  const created: string[] = [];
  let builds: Record<'dev' | 'production' | 'production with components', K8sObject[]>;

  before(async () => {
    ns = await createNamespace('deploy');
    work = mkdtempSync(join(tmpdir(), 'chaperone-deploy-'));
    // production with every optional component, the way the README tells users to add them.
    const withComponents = join(work, 'all');
    const rel = (p: string) => relative(withComponents, join(DEPLOY, p));
    mkdirSync(withComponents);
    writeFileSync(
      join(withComponents, 'kustomization.yaml'),
      YAML.stringify({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        resources: [rel('overlays/production')],
        components: [
          rel('components/prometheus-operator'),
          rel('observability'),
          rel('components/prometheus-annotations'),
          rel('components/collector-tokenreview'),
        ],
      }),
    );
    builds = {
      dev: kustomize(join(DEPLOY, 'overlays', 'dev')),
      production: kustomize(join(DEPLOY, 'overlays', 'production')),
      'production with components': kustomize(withComponents),
    };
  });

  after(() => {
    if (created.length)
      kubectl(kube.kubeconfigPath, ['delete', '--ignore-not-found', '--wait=false', ...created]);
    ns?.delete();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('each overlay builds into chaperone-system, with what it is for', () => {
    for (const [name, objs] of Object.entries(builds)) {
      for (const o of objs) {
        const id = `${name}: ${o.kind}/${o.metadata.name}`;
        if (CLUSTER_SCOPED.has(o.kind)) assert.equal(o.metadata.namespace, undefined, id);
        else assert.equal(o.metadata.namespace, NAMESPACE, `${id} lands in ${NAMESPACE}`);
        assert.equal(o.metadata.labels?.['app.kubernetes.io/part-of'], 'chaperone', `${id} is labelled`);
      }
    }
    const kinds = (objs: K8sObject[]) => new Set(objs.map((o) => o.kind));
    const dev = kinds(builds.dev);
    const production = kinds(builds.production);
    for (const k of ['Namespace', 'Deployment', 'Service', 'Lease', 'MutatingWebhookConfiguration']) {
      assert.ok(dev.has(k) && production.has(k), `${k} in both overlays`);
    }
    assert.ok(dev.has('PersistentVolumeClaim'), 'dev keeps the embedded store on a claim');
    assert.ok(!dev.has('NetworkPolicy') && !dev.has('PodDisruptionBudget'));
    assert.ok(production.has('NetworkPolicy') && production.has('PodDisruptionBudget'));
    assert.ok(!production.has('PersistentVolumeClaim'), 'production keeps nothing on a volume');
    const all = kinds(builds['production with components']);
    for (const k of ['ServiceMonitor', 'PodMonitor', 'PrometheusRule']) assert.ok(all.has(k), k);
    assert.ok(
      !production.has('ServiceMonitor'),
      'the Prometheus Operator kinds come only with the component',
    );
  });

  // Fails when an object is invalid for the API server or kubectl's schema check (a
  // misspelt field, a bad value, a kind it lacks), and when a Prometheus Operator object
  // uses a field the CRDs here do not define (tried: an `intervall` in a ServiceMonitor).
  it('the API server accepts what dev and production with every component build (server-side apply, dry run)', async () => {
    const kubeconfig = kube.kubeconfigPath;
    const cacheDir = join(work, 'kube-cache');
    const crds = YAML.parseAllDocuments(readFileSync(CRD_FILE, 'utf8')).map((d) => d.toJS() as K8sObject);
    const missing = crds.filter(
      (c) => kubectl(kubeconfig, ['get', 'crd', c.metadata.name, '-o', 'name']).code !== 0,
    );
    if (missing.length) {
      const r = kubectl(kubeconfig, ['create', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: missing }),
      });
      assert.equal(r.code, 0, r.stderr);
      created.push(...missing.map((c) => `crd/${c.metadata.name}`));
      const w = kubectl(kubeconfig, [
        'wait',
        '--for=condition=established',
        '--timeout=30s',
        ...missing.map((c) => `crd/${c.metadata.name}`),
      ]);
      assert.equal(w.code, 0, w.stderr);
    }
    // policy/v1 PodDisruptionBudgets exist from Kubernetes 1.21 (the production overlay
    // says so); an older server checks them as policy/v1beta1, the same fields.
    const versions = kubectl(kubeconfig, ['api-versions', `--cache-dir=${cacheDir}`]);
    assert.equal(versions.code, 0, versions.stderr);
    const hasPolicyV1 = versions.stdout.split('\n').includes('policy/v1');
    for (const build of ['dev', 'production with components'] as const) {
      // Namespaced objects go to the test's namespace: a dry run does not create
      // chaperone-system, and nothing may touch a real one.
      const sent = builds[build].map((o) => {
        const out = structuredClone(o);
        if (out.metadata.namespace) out.metadata.namespace = ns.name;
        if (out.apiVersion === 'policy/v1' && !hasPolicyV1) out.apiVersion = 'policy/v1beta1';
        return out;
      });
      const r = dryRun(kubeconfig, sent, cacheDir);
      assert.equal(r.code, 0, `${build}: ${r.stderr}`);
      const returned = (JSON.parse(r.stdout) as { items: K8sObject[] }).items;
      assert.equal(returned.length, sent.length, `${build}: one answer per object`);
      for (const o of sent.filter((x) => x.apiVersion.startsWith(`${MONITORING_GROUP}/`))) {
        const back = returned.find((x) => x.kind === o.kind && x.metadata.name === o.metadata.name);
        assert.deepEqual(back?.spec, o.spec, `${build}: ${o.kind}/${o.metadata.name} keeps every field`);
      }
    }
  });

  // Fails when a Deployment drops readOnlyRootFilesystem, runAsNonRoot or the capability
  // drop, runs as another UID than the image, or when the Dockerfile's USER is a name.
  it('every pod, the injected sidecar too, runs as the image’s non-root user with a read-only root filesystem', () => {
    const uid = imageUser();
    assert.notEqual(uid, 0);
    for (const [build, objs] of Object.entries(builds)) {
      const pods: [string, PodSpec][] = objs
        .filter((o) => o.kind === 'Deployment')
        .map((o) => [`${build}: ${o.metadata.name}`, (o.spec as DeploymentSpec).template.spec]);
      const sidecar = sidecarOf(injectedPod(objs));
      for (const [id, pod] of pods) {
        assert.equal(pod.securityContext?.runAsNonRoot, true, id);
        assert.equal(pod.securityContext?.runAsUser, uid, `${id} runs as the image's user`);
        assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', id);
      }
      const containers: [string, Container][] = [
        ...pods.flatMap(([id, pod]) =>
          pod.containers.map((c): [string, Container] => [`${id}/${c.name}`, c]),
        ),
        [`${build}: injected sidecar`, sidecar],
      ];
      for (const [id, c] of containers) {
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, id);
        assert.equal(c.securityContext?.allowPrivilegeEscalation, false, id);
        assert.notEqual(c.securityContext?.privileged, true, id);
        assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], id);
        assert.equal(c.securityContext?.capabilities?.add, undefined, id);
      }
      assert.equal(sidecar.securityContext?.runAsUser, uid, `${build}: the sidecar runs as the image's user`);
      const injector = onlyContainer(deploymentSpec(objs, 'chaperone-injector'));
      assert.equal(sidecar.image, injector.image, `${build}: sidecars run the injector's own image`);
    }
  });

  // Fails on a CHAPERONE_* variable the component does not know or a value it refuses
  // (tried: CHAPERONE_QUERY_TOKEN_FIL), and when the collector would write
  // or read a path no volume provides (tried: the dev overlay without its data volume).
  it('the injector and the collector accept the environment each overlay gives them, and every path they use is mounted', () => {
    for (const [build, objs] of Object.entries(builds)) {
      const injector = injectorSettings(objs);
      assert.equal(injector.namespace, NAMESPACE, build);
      // The collector's CA comes from the ca.crt of its TLS Secret, and only that key.
      const injectorPod = deploymentSpec(objs, 'chaperone-injector').template.spec;
      const caMount = onlyContainer(deploymentSpec(objs, 'chaperone-injector')).volumeMounts?.find((m) =>
        injector.collectorCaFile?.startsWith(`${m.mountPath}/`),
      );
      assert.ok(caMount, `${build}: ${injector.collectorCaFile} is on a volume`);
      assert.deepEqual(
        injectorPod.volumes?.find((v) => v.name === caMount.name)?.projected,
        {
          defaultMode: 0o444,
          sources: [
            { secret: { name: 'chaperone-collector-tls', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          ],
        },
        `${build}: the injector sees ca.crt of chaperone-collector-tls and nothing else`,
      );
      const c = collectorSettings(objs);
      const container = onlyContainer(deploymentSpec(objs, 'chaperone-collector'));
      const mountOf = (path: string) =>
        (container.volumeMounts ?? []).find(
          (m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`),
        );
      const reads = [c.tlsCertFile, c.tlsKeyFile, c.queryTokenFile, c.queryTokensFile, c.checkpointKeyFile];
      for (const path of reads.filter((p): p is string => p !== undefined)) {
        assert.ok(mountOf(path), `${build}: ${path} is on a volume`);
      }
      const writes =
        c.storage === 'embedded' ? [c.dataDir] : [c.checkpointLog ?? `${c.dataDir}/checkpoints.log`];
      for (const path of writes) {
        const m = mountOf(path);
        assert.ok(m && m.readOnly !== true, `${build}: ${path} is on a writable volume`);
      }
      if (c.storage === 'postgres')
        assert.ok(c.checkpointKeyFile, `${build}: PostgreSQL storage has its key`);
    }
    // dev: the embedded store on the claim the overlay makes, one process at a time.
    const dev = deploymentSpec(builds.dev, 'chaperone-collector');
    const data = onlyContainer(dev).volumeMounts?.find(
      (m) => m.mountPath === collectorSettings(builds.dev).dataDir,
    );
    const claim = dev.template.spec.volumes?.find((v) => v.name === data?.name)?.persistentVolumeClaim as
      | { claimName: string }
      | undefined;
    find(builds.dev, 'PersistentVolumeClaim', claim?.claimName ?? '(no claim)');
    assert.equal(dev.replicas, 1);
    assert.equal(dev.strategy?.type, 'Recreate', 'the old pod stops before the new one opens the store');
    assert.equal(collectorSettings(builds.dev).storage, 'embedded');
    assert.equal(collectorSettings(builds.production).storage, 'postgres');
    assert.equal(collectorSettings(builds['production with components']).ingestAuth, 'tokenreview');
  });

  // Fails when production loses its second injector, the anti-affinity, a budget that
  // selects the pods (tried: the injector's budget on app.kubernetes.io/name: injector), the
  // Lease, requests and limits, or the collector's documented Secrets.
  it('production: two injectors spread over nodes with a budget and their Lease; collector replicas on PostgreSQL; requests and limits', () => {
    const objs = builds.production;
    const injector = deploymentSpec(objs, 'chaperone-injector');
    assert.equal(injector.replicas, 2);
    const collector = deploymentSpec(objs, 'chaperone-collector');
    assert.ok((collector.replicas ?? 1) >= 2, 'more than one collector');
    for (const [name, spec] of [
      ['chaperone-injector', injector],
      ['chaperone-collector', collector],
    ] as const) {
      const terms =
        spec.template.spec.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution;
      assert.ok(
        terms?.some(
          (t) =>
            t.podAffinityTerm.topologyKey === 'kubernetes.io/hostname' &&
            subset(t.podAffinityTerm.labelSelector.matchLabels, spec.template.metadata.labels),
        ),
        `${name}: replicas prefer different nodes`,
      );
      const pdb = find(objs, 'PodDisruptionBudget', name).spec as {
        minAvailable: number;
        selector: { matchLabels: Labels };
      };
      assert.equal(pdb.minAvailable, 1, name);
      assert.ok(
        subset(pdb.selector.matchLabels, spec.template.metadata.labels),
        `${name}: the budget selects its pods`,
      );
      const c = onlyContainer(spec);
      for (const r of ['cpu', 'memory']) assert.ok(c.resources?.requests?.[r], `${name}: requests ${r}`);
      assert.ok(c.resources?.limits?.memory, `${name}: limits memory`);
    }
    // The Lease the injectors elect their leader with, under the name the injector uses.
    const lease = instanceName(injectorSettings(objs));
    find(objs, 'Lease', lease);
    // Both Secrets of the PostgreSQL store come from the documented Secrets and keys.
    const env = onlyContainer(collector).env ?? [];
    assert.deepEqual(env.find((e) => e.name === 'CHAPERONE_POSTGRES_URL')?.valueFrom?.secretKeyRef, {
      name: 'chaperone-collector-postgres',
      key: 'url',
    });
    const keyVolume = collector.template.spec.volumes?.find(
      (v) => v.secret?.secretName === 'chaperone-collector-checkpoint-key',
    );
    assert.ok(keyVolume, 'the checkpoint key comes from its Secret');
    const keyMount = onlyContainer(collector).volumeMounts?.find((m) => m.name === keyVolume.name);
    assert.equal(`${keyMount?.mountPath}/key.pem`, collectorSettings(objs).checkpointKeyFile);
  });

  // Fails when a policy names a port the pods do not have (tried: renaming the collector's
  // port `query`), when the ingest rule stops matching the pods the injector produces, or
  // when the sidecars are sent to another port than the collector's ingest port.
  it('production NetworkPolicies: ingress denied by default; each open port exists on its pods; injected sidecars reach ingest', () => {
    const objs = builds.production;
    const policies = objs.filter((o) => o.kind === 'NetworkPolicy');
    const pods = objs.filter((o) => o.kind === 'Deployment').map((o) => (o.spec as DeploymentSpec).template);
    const selects = (p: NetworkPolicySpec, labels: Labels | undefined) =>
      subset(p.podSelector.matchLabels, labels) &&
      (p.podSelector.matchExpressions ?? []).every(
        (e) => e.operator === 'In' && e.values.includes(labels?.[e.key] ?? ''),
      );
    const denyAll = policies.find((o) => {
      const s = o.spec as NetworkPolicySpec;
      return (
        Object.keys(s.podSelector).length === 0 && s.policyTypes.includes('Ingress') && !s.ingress?.length
      );
    });
    assert.ok(denyAll, 'a policy denies all ingress in the namespace');
    const opened = new Map<string, string>();
    for (const o of policies) {
      const s = o.spec as NetworkPolicySpec;
      const selected = pods.filter((t) => selects(s, t.metadata.labels));
      if (o !== denyAll) assert.ok(selected.length > 0, `${o.metadata.name} selects Chaperone's pods`);
      for (const port of (s.ingress ?? []).flatMap((r) => r.ports ?? [])) {
        for (const t of selected) {
          const names = t.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name));
          assert.ok(
            names.includes(String(port.port)),
            `${o.metadata.name}: port ${port.port} on ${t.metadata.labels?.['app.kubernetes.io/name']}`,
          );
          opened.set(`${t.metadata.labels?.['app.kubernetes.io/name']}/${port.port}`, o.metadata.name);
        }
      }
    }
    for (const t of pods) {
      for (const p of t.spec.containers.flatMap((c) => c.ports ?? [])) {
        assert.ok(
          opened.has(`${t.metadata.labels?.['app.kubernetes.io/name']}/${p.name}`),
          `port ${p.name} is opened to someone`,
        );
      }
    }
    // Ingest: from the pods the injector really produces, in namespaces opted in the way
    // the webhooks select them.
    const ingest = find(objs, 'NetworkPolicy', 'chaperone-collector-ingest').spec as NetworkPolicySpec;
    const injected = injectedPod(objs);
    const from = ingest.ingress?.[0]?.from?.[0];
    assert.ok(
      subset(from?.podSelector?.matchLabels, injected.metadata?.labels as Labels),
      'an injected pod matches',
    );
    assert.deepEqual(from?.namespaceSelector?.matchLabels, { [INJECT_LABEL]: INJECT_ENABLED });
    // The injector sends sidecars (and opens the agents' egress) to the collector's ingest port.
    const settings = injectorSettings(objs);
    const collector = onlyContainer(deploymentSpec(objs, 'chaperone-collector'));
    const ingestPort = collector.ports?.find((p) => p.name === 'ingest')?.containerPort;
    assert.equal(settings.collectorPort, ingestPort);
    const url = new URL(settings.collectorUrl ?? '');
    assert.equal(url.hostname, `chaperone-collector.${NAMESPACE}.svc`);
    const service = find(objs, 'Service', 'chaperone-collector').spec as {
      ports: { name: string; port: number; targetPort: string }[];
    };
    const servicePort = service.ports.find((p) => p.port === Number(url.port || 443));
    assert.equal(servicePort?.targetPort, 'ingest', 'the URL reaches the ingest port');
  });

  // Fails when a monitor selects nothing the overlays build or the injector injects
  // (tried: the PodMonitor on a port named `metrics`).
  it('monitoring: the ServiceMonitors and annotations reach the metrics ports, the PodMonitor the injected sidecars', () => {
    const objs = builds['production with components'];
    for (const o of objs.filter((x) => x.kind === 'ServiceMonitor')) {
      const s = o.spec as { selector: { matchLabels: Labels }; endpoints: { port: string }[] };
      const services = objs.filter(
        (x) => x.kind === 'Service' && subset(s.selector.matchLabels, x.metadata.labels),
      );
      assert.equal(services.length, 1, `${o.metadata.name} selects one Service`);
      const ports = ((services[0] as K8sObject).spec as { ports: { name: string }[] }).ports.map(
        (p) => p.name,
      );
      for (const e of s.endpoints) assert.ok(ports.includes(e.port), `${o.metadata.name}: port ${e.port}`);
    }
    const pm = find(objs, 'PodMonitor', 'chaperone-sidecars').spec as {
      namespaceSelector: { any?: boolean };
      selector: { matchLabels: Labels };
      podMetricsEndpoints: { port: string }[];
    };
    const pod = injectedPod(objs);
    assert.equal(pm.namespaceSelector.any, true, 'sidecars run in every opted-in namespace');
    assert.ok(
      subset(pm.selector.matchLabels, pod.metadata?.labels as Labels),
      'the PodMonitor selects injected pods',
    );
    const sidecarPorts = (sidecarOf(pod).ports ?? []).map((p) => p.name);
    for (const e of pm.podMetricsEndpoints)
      assert.ok(sidecarPorts.includes(e.port), `sidecar port ${e.port}`);
    for (const name of ['chaperone-injector', 'chaperone-collector']) {
      const spec = deploymentSpec(objs, name);
      const annotations = spec.template.metadata.annotations ?? {};
      assert.equal(annotations['prometheus.io/scrape'], 'true', name);
      const metrics = onlyContainer(spec).ports?.find((p) => p.name === 'metrics')?.containerPort;
      assert.equal(
        annotations['prometheus.io/port'],
        String(metrics),
        `${name}: the annotation names the metrics port`,
      );
    }
    const delegator = objs.find(
      (o) => o.kind === 'ClusterRoleBinding' && o.roleRef?.name === 'system:auth-delegator',
    );
    assert.ok(delegator, 'the collector may review tokens (approvers, and collector-tokenreview)');
    assert.ok(
      builds.production.some((o) => o.roleRef?.name === 'system:auth-delegator'),
      'approvals need TokenReview and SubjectAccessReview in every build',
    );
  });

  // Fails when a role is widened (tried: the injector's Secret rule without resourceNames,
  // which lets it read the collector's PostgreSQL URL) or narrowed below what the code calls.
  it('RBAC: each role allows what the code calls and not what lies beside it (SubjectAccessReview)', async () => {
    const kubeconfig = kube.kubeconfigPath;
    const objs = builds.production;
    const n = ns.name;
    // The overlay's roles for real, in the test namespace; cluster-wide objects renamed so
    // they cannot meet a real installation's.
    const suffix = `-${ns.name}`;
    const ours = new Set(objs.filter((o) => o.kind === 'ClusterRole').map((o) => o.metadata.name));
    const rbac = objs
      .filter((o) =>
        ['ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind),
      )
      .map((o) => {
        const out = structuredClone(o);
        if (CLUSTER_SCOPED.has(o.kind)) out.metadata.name += suffix;
        else out.metadata.namespace = ns.name;
        if (out.roleRef && out.roleRef.kind === 'ClusterRole' && ours.has(out.roleRef.name))
          out.roleRef.name += suffix;
        if (out.subjects) out.subjects = out.subjects.map((s) => ({ ...s, namespace: ns.name }));
        return out;
      });
    // The agents' binding, as README.md tells operators to make it.
    rbac.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'chaperone-sidecar', namespace: ns.name },
      roleRef: {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: `chaperone-sidecar${suffix}`,
      },
      subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace: ns.name }],
    });
    created.push(
      ...rbac
        .filter((o) => CLUSTER_SCOPED.has(o.kind))
        .map((o) => `${o.kind.toLowerCase()}/${o.metadata.name}`),
    );
    const r = kubectl(kubeconfig, ['create', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rbac }),
    });
    assert.equal(r.code, 0, r.stderr);

    // who (a ServiceAccount in the test namespace), verb, resource[.group], namespace (- for
    // none), name (- for none), what RBAC must answer. $ns is the test namespace, standing in
    // for chaperone-system.
    const rows = accessTable(
      ns.name,
      `
      # The injector, in its namespace: its own certificate Secret and Lease, nothing else.
      chaperone-injector   watch   secrets                                                       $ns      chaperone-injector-tls        yes
      chaperone-injector   update  secrets                                                       $ns      chaperone-injector-tls        yes
      chaperone-injector   create  secrets                                                       $ns      -                             yes
      chaperone-injector   get     secrets                                                       $ns      chaperone-collector-postgres  no
      chaperone-injector   list    secrets                                                       $ns      -                             no
      chaperone-injector   update  leases.coordination.k8s.io                                    $ns      chaperone-injector            yes
      chaperone-injector   update  leases.coordination.k8s.io                                    $ns      other-controller              no
      # …across the cluster: its webhook configurations, the opt-in labels, the agents' policies.
      chaperone-injector   update  mutatingwebhookconfigurations.admissionregistration.k8s.io    -        chaperone-injector            yes
      chaperone-injector   watch   validatingwebhookconfigurations.admissionregistration.k8s.io  -        chaperone-injector            yes
      chaperone-injector   update  validatingwebhookconfigurations.admissionregistration.k8s.io  -        someone-elses                 no
      chaperone-injector   delete  mutatingwebhookconfigurations.admissionregistration.k8s.io    -        chaperone-injector            no
      chaperone-injector   watch   namespaces                                                    -        -                             yes
      chaperone-injector   update  namespaces                                                    agents   agents                        no
      chaperone-injector   create  networkpolicies.networking.k8s.io                             agents   -                             yes
      chaperone-injector   patch   networkpolicies.networking.k8s.io                             agents   chaperone-egress              no
      # …and the collector's CA in opted-in namespaces: that one ConfigMap, created by a
      # server-side apply (authorised as a create of its name); no other ConfigMap.
      chaperone-injector   create  configmaps                                                    agents   chaperone-collector-ca        yes
      chaperone-injector   patch   configmaps                                                    agents   chaperone-collector-ca        yes
      chaperone-injector   watch   configmaps                                                    -        chaperone-collector-ca        yes
      chaperone-injector   create  configmaps                                                    agents   -                             no
      chaperone-injector   update  configmaps                                                    agents   chaperone-policy              no
      chaperone-injector   list    configmaps                                                    -        -                             no
      chaperone-injector   get     endpoints                                                     default  kubernetes                    yes
      chaperone-injector   get     endpoints                                                     agents   web                           no
      chaperone-injector   get     pods                                                          agents   agent                         no
      # The collector: one pod and its namespace by name, to admit a sidecar; no lists, no
      # Secrets. TokenReview and SubjectAccessReview (system:auth-delegator) check approvers.
      chaperone-collector  get     pods                                                          agents   agent                         yes
      chaperone-collector  get     namespaces                                                    agents   agents                        yes
      chaperone-collector  list    pods                                                          agents   -                             no
      chaperone-collector  get     secrets                                                       $ns      chaperone-collector-postgres  no
      chaperone-collector  create  tokenreviews.authentication.k8s.io                            -        -                             yes
      chaperone-collector  create  subjectaccessreviews.authorization.k8s.io                     -        -                             yes
      # An agent bound to chaperone-sidecar: its own namespace's labels, nothing more.
      agent                get     namespaces                                                    $ns      $ns                           yes
      agent                get     namespaces                                                    default  default                       no
      agent                list    namespaces                                                    -        -                             no
      `,
    );
    const ask = (asked: readonly AccessRow[]): boolean[] => {
      const reviews = asked.map((row) => ({
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          // What a token of that ServiceAccount authenticates as.
          user: `system:serviceaccount:${n}:${row.who}`,
          groups: ['system:serviceaccounts', `system:serviceaccounts:${n}`, 'system:authenticated'],
          resourceAttributes: {
            verb: row.verb,
            group: row.group ?? '',
            resource: row.resource,
            ...(row.namespace ? { namespace: row.namespace } : {}),
            ...(row.name ? { name: row.name } : {}),
          },
        },
      }));
      const out = kubectl(kubeconfig, ['create', '-f', '-', '-o', 'jsonpath={.status.allowed}{"\\n"}'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: reviews }),
      });
      assert.equal(out.code, 0, out.stderr);
      const answers = out.stdout.trim().split('\n');
      assert.equal(answers.length, asked.length);
      return answers.map((a) => a === 'true');
    };
    // RBAC reads roles and bindings from a cache: wait until every grant is visible (so the
    // refusals below are the roles' answer, not a cache that lags); a grant that never shows
    // up is reported with the rest below.
    const grants = rows.filter((row) => row.allowed);
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await sleep(250)) {
      if (ask(grants).every(Boolean)) break;
    }
    const answers = ask(rows);
    const wrong = rows
      .filter((row, i) => answers[i] !== row.allowed)
      .map(
        (row) =>
          `${row.who} ${row.verb} ${row.group ? `${row.group}/` : ''}${row.resource}${row.name ? `/${row.name}` : ''}${row.namespace ? ` in ${row.namespace}` : ''}: expected ${row.allowed ? 'allowed' : 'denied'}`,
      );
    assert.deepEqual(wrong, []);
  });
});
