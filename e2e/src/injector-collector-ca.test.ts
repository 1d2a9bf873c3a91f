// The collector's CA bundle against the real control plane, with the injector under
// exactly the RBAC of deploy/base/injector: published as the ConfigMap
// chaperone-collector-ca in each opted-in namespace, put back when deleted or edited,
// updated when the file changes, removed with the opt-in label; mounted into the sidecar
// only of every injected pod, which the sidecar's own settings accept; and, end to end, the
// sidecar of an injected pod (run as a local process from the stored pod: there is no
// kubelet here) verifies a TLS collector with it, and refuses one the bundle does not vouch for.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Pod } from '@chaperone/injector';
import { parseConfig } from '@chaperone/shared';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import { sidecarSchema } from '@chaperone/sidecar';
import { startCollectorProcess } from './collector-process.ts';
import {
  type LocalSidecar,
  resolvedEnv,
  runPodSidecar,
  type StoredPod,
  sidecarContainer,
} from './demo-sidecar.ts';
import { kubeInfo } from './environment.ts';
import {
  deleteNamespace,
  type Injector,
  optInNamespace,
  plainNamespace,
  podManifest,
  startInjector,
  waitUntilInjecting,
} from './injector-harness.ts';
import { kubectl, kubectlJson } from './kubectl.ts';
import { freePort } from './ports.ts';
import { waitFor } from './process.ts';

interface ConfigMap {
  metadata: { uid: string; labels?: Record<string, string> };
  data?: Record<string, string>;
}

const kube = kubeInfo();
const POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: e2e }
spec:
  defaultAction: allow
`;
const run = (args: string[], input?: string) =>
  kubectl(kube.kubeconfigPath, args, input === undefined ? {} : { input });
const configMap = (ns: string) => {
  const r = run(['get', 'configmap', 'chaperone-collector-ca', '-n', ns, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as ConfigMap) : undefined;
};
/** A CA certificate as the injector publishes it (LF line endings). */
const newCa = () => createCA({ commonName: `collector-ca-${Date.now()}` }).cert.replace(/\r\n/g, '\n');
const within = { timeoutMs: 20_000, intervalMs: 200 };
const getPod = (ns: string, name: string) =>
  kubectlJson(kube.kubeconfigPath, ['get', 'pod', name, '-n', ns, '-o', 'json']) as Pod & StoredPod;

describe('injector: the collector CA in every opted-in namespace', () => {
  let inj: Injector;
  let dir: string;
  let caFile: string;
  const namespaces: string[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'collector-ca-'));
    caFile = join(dir, 'ca.crt');
    writeFileSync(caFile, newCa());
    inj = await startInjector(kube, {
      args: [
        // The admin removes a namespace's opt-in label below: an exempt identity's privilege.
        '--exempt-groups=system:masters',
        '--collector-url=https://chaperone-collector.chaperone-system.svc:443',
        `--collector-ca-file=${caFile}`,
        '--cert-reload-interval=200ms',
      ],
    });
  });
  after(async () => {
    for (const ns of namespaces) deleteNamespace(kube, ns);
    await inj?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  // Fails when the controller does not publish, restore, revert, update or remove the
  // ConfigMap, and when deploy/base/injector's RBAC does not let it (tried: the configmaps
  // rule without create, which the server-side apply that creates it is authorised as).
  it('publishes it, puts it back when deleted or edited, follows the file, removes it with the label', async () => {
    const ns = optInNamespace(kube, inj, 'ca');
    const plain = plainNamespace(kube, 'ca-plain');
    namespaces.push(ns, plain);
    const bundle = () => readFileSync(caFile, 'utf8');
    const created = await waitFor(async () => configMap(ns), { what: `the ConfigMap in ${ns}`, ...within });
    assert.equal(created.data?.['ca.crt'], bundle());
    assert.equal(created.metadata.labels?.['app.kubernetes.io/managed-by'], 'chaperone-injector');
    assert.equal(created.metadata.labels?.['chaperone.dev/revision'], inj.revision);
    assert.equal(configMap(plain), undefined, 'a namespace that did not opt in gets none');

    // Deleted: put back.
    let r = run(['delete', 'configmap', 'chaperone-collector-ca', '-n', ns]);
    assert.equal(r.code, 0, r.stderr);
    const recreated = await waitFor(
      async () => {
        const cm = configMap(ns);
        return cm && cm.metadata.uid !== created.metadata.uid ? cm : undefined;
      },
      { what: 'the deleted ConfigMap to come back', ...within },
    );
    assert.equal(recreated.data?.['ca.crt'], bundle());

    // Edited (another CA, an extra key): reverted.
    r = run([
      'patch',
      'configmap',
      'chaperone-collector-ca',
      '-n',
      ns,
      '--type=merge',
      '-p',
      JSON.stringify({ data: { 'ca.crt': newCa(), 'extra.crt': 'x' } }),
    ]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(
      async () => {
        const cm = configMap(ns);
        return cm?.data?.['ca.crt'] === bundle() && cm.data['extra.crt'] === undefined;
      },
      { what: 'the edited ConfigMap to be repaired', ...within },
    );

    // Rotation: the new CA beside the old in the file reaches the namespace.
    writeFileSync(caFile, `${bundle()}${newCa()}`);
    await waitFor(async () => configMap(ns)?.data?.['ca.crt'] === bundle(), {
      what: 'the rotated bundle to be published',
      ...within,
    });
    assert.equal((bundle().match(/BEGIN CERTIFICATE/g) ?? []).length, 2);

    // The label goes: so does the ConfigMap.
    r = run(['label', 'namespace', ns, 'chaperone.dev/inject-']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(async () => configMap(ns) === undefined, {
      what: 'the ConfigMap to be removed with the label',
      ...within,
    });
    assert.ok(
      ((await inj.metric('chaperone_injector_collector_ca_actions_total{action="created"}')) ?? 0) >= 2,
    );
    assert.ok(
      ((await inj.metric('chaperone_injector_collector_ca_actions_total{action="repaired"}')) ?? 0) >= 2,
    );
    assert.ok(
      ((await inj.metric('chaperone_injector_collector_ca_actions_total{action="deleted"}')) ?? 0) >= 1,
    );
  });

  // Fails when an agent container mounts the CA volume, the sidecar does not, or the sidecar is
  // told a path outside its mount or a setting it does not know.
  it('mounts it into the sidecar only of an injected pod, where the sidecar is told to find it', async () => {
    const ns = optInNamespace(kube, inj, 'ca-pod');
    namespaces.push(ns);
    await waitUntilInjecting(kube, ns);
    await waitFor(async () => configMap(ns), { what: `the ConfigMap in ${ns}`, ...within });
    const r = run(
      ['create', '-n', ns, '-f', '-'],
      podManifest('agent', { annotations: { 'chaperone.dev/databases': 'orders=orders-db' } }),
    );
    assert.equal(r.code, 0, r.stderr);
    const pod = getPod(ns, 'agent');
    const volume = pod.spec.volumes?.find((v) => v.configMap?.name === 'chaperone-collector-ca');
    assert.ok(volume, 'the pod has the ConfigMap as a volume');
    assert.equal(volume.configMap?.optional, undefined, 'not optional: the pod waits for it');
    const sidecar = sidecarContainer(pod);
    const env = resolvedEnv(pod, sidecar);
    // The sidecar's own settings schema reads every variable the injector gave it.
    const settings = parseConfig(sidecarSchema, { env });
    const caPath = settings.collectorCaFile as string;
    const mount = sidecar.volumeMounts?.find((m) => caPath.startsWith(`${m.mountPath}/`));
    assert.equal(mount?.name, volume.name, `${caPath} is on the ConfigMap's volume`);
    assert.equal(settings.databaseTls, 'direct');
    for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) {
      if (c.name === sidecar.name) continue;
      assert.ok(!c.volumeMounts?.some((m) => m.name === volume.name), `${c.name} does not mount it`);
      assert.ok(!c.env?.some((e) => e.name.startsWith('CHAPERONE_COLLECTOR')), `${c.name} is not told of it`);
    }
  });
});

describe('injector: sidecars verify a TLS collector with the published CA', () => {
  let dir: string;
  let inj: Injector | undefined;
  const stops: (() => Promise<void>)[] = [];
  after(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await inj?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  // Fails when the sidecar is not given the published CA (it would then trust only the CAs
  // Node.js ships, and never connect), or when it trusts anything but that bundle.
  it('connects when the bundle holds the collector’s CA, and refuses the collector when it does not', async () => {
    dir = mkdtempSync(join(tmpdir(), 'collector-tls-'));
    const ca = createCA({ commonName: 'e2e-collector-ca' });
    const leaf = issueCertificate({ ca, commonName: 'collector', ipAddresses: ['127.0.0.1'] });
    writeFileSync(join(dir, 'tls.crt'), leaf.cert);
    writeFileSync(join(dir, 'tls.key'), leaf.key, { mode: 0o600 });
    writeFileSync(join(dir, 'query-token'), 'collector-ca-e2e-query-token-0123', { mode: 0o600 });
    const caFile = join(dir, 'ca.crt');
    writeFileSync(caFile, ca.cert.replace(/\r\n/g, '\n')); // as the injector publishes it
    const collector = await startCollectorProcess({
      name: 'collector-tls',
      port: await freePort(),
      logDir: dir,
      tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), ca: ca.cert },
      args: [
        '--data-dir',
        join(dir, 'data'),
        '--kubeconfig',
        kube.kubeconfigPath,
        '--query-token-file',
        join(dir, 'query-token'),
        '--log-level',
        'warn',
      ],
    });
    stops.push(() => collector.stop());
    assert.match(collector.url, /^https:/);
    inj = await startInjector(kube, {
      args: [
        `--collector-url=${collector.url}`,
        `--collector-ca-file=${caFile}`,
        '--cert-reload-interval=200ms',
      ],
    });
    const ns = optInNamespace(kube, inj, 'ca-tls');
    stops.push(async () => deleteNamespace(kube, ns));
    const r = run([
      'create',
      'configmap',
      'chaperone-policy',
      '-n',
      ns,
      `--from-literal=policy.yaml=${POLICY}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    await waitUntilInjecting(kube, ns);

    const sidecarFor = async (name: string): Promise<LocalSidecar> => {
      const created = run(['create', '-n', ns, '-f', '-'], podManifest(name));
      assert.equal(created.code, 0, created.stderr);
      const s = await runPodSidecar({
        kubeconfig: kube.kubeconfigPath,
        server: kube.server,
        pod: getPod(ns, name),
        dir: join(dir, name),
      });
      stops.push(() => s.stop());
      return s;
    };
    const connected = async (s: LocalSidecar) =>
      /chaperone_sidecar_collector_connected\{[^}]*\} 1$/m.test(await (await fetch(s.metricsUrl)).text());

    await waitFor(async () => configMap(ns)?.data?.['ca.crt'] === readFileSync(caFile, 'utf8'), {
      what: 'the CA to be published',
      ...within,
    });
    const trusting = await sidecarFor('trusting');
    await waitFor(async () => connected(trusting), {
      what: 'the sidecar to connect to the TLS collector',
      timeoutMs: 30_000,
      intervalMs: 200,
    });

    // Another CA in the file: published, and a new pod's sidecar no longer trusts the collector.
    writeFileSync(caFile, newCa());
    await waitFor(async () => configMap(ns)?.data?.['ca.crt'] === readFileSync(caFile, 'utf8'), {
      what: 'the other CA to be published',
      ...within,
    });
    const wary = await sidecarFor('wary');
    await waitFor(async () => /collector connection error/.test(wary.process.logTail(200)), {
      what: 'the sidecar to refuse the collector’s certificate',
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    assert.match(wary.process.logTail(200), /certificate/i);
    assert.equal(await connected(wary), false);
  });
});
