// The injector against the real control plane, driven by the real kubectl:
// which pods get the sidecar, what the API server stores, and what is refused.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { custodyViolations, type Pod } from '@chaperone/injector';
import { kubeInfo } from './environment.ts';
import {
  chaperoneCli,
  deleteNamespace,
  type Injector,
  optInNamespace,
  plainNamespace,
  podManifest,
  postToWebhook,
  startInjector,
  waitForServiceAccount,
  waitUntilInjecting,
  webhookCaBundle,
} from './injector-harness.ts';
import { kubectl, kubectlJson } from './kubectl.ts';
import { waitFor } from './process.ts';

const SA_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

describe('injector: injection through the API server', () => {
  const kube = kubeInfo();
  let inj: Injector;
  let ns: string;
  let plain: string;

  const run = (args: string[], input?: string) =>
    kubectl(kube.kubeconfigPath, args, input === undefined ? {} : { input });
  const getPod = (namespace: string, name: string) =>
    kubectlJson(kube.kubeconfigPath, ['get', 'pod', name, '-n', namespace, '-o', 'json']) as Pod;
  const createPod = (namespace: string, manifest: string) => {
    const r = run(['create', '-n', namespace, '-f', '-'], manifest);
    assert.equal(r.code, 0, r.stderr);
  };
  const chaperone = (args: string[]) => chaperoneCli(kube.kubeconfigPath, args);

  before(async () => {
    // The suite's admin (group system:masters) is exempt here, as a cluster admin
    // usually is: its opt-out pods are admitted (injector-validation tests the refusals).
    inj = await startInjector(kube, { args: ['--exempt-groups=system:masters'] });
    ns = optInNamespace(kube, inj, 'inject');
    plain = plainNamespace(kube, 'plain');
    await waitUntilInjecting(kube, ns);
    await waitForServiceAccount(kube, plain);
  });
  after(async () => {
    deleteNamespace(kube, ns);
    deleteNamespace(kube, plain);
    await inj?.cleanup();
  });

  it('injects a bare pod; the stored pod gives no agent container a real token', () => {
    createPod(ns, podManifest('bare'));
    const pod = getPod(ns, 'bare');
    const names = pod.spec.containers.map((c) => c.name);
    assert.deepEqual(names, ['chaperone-sidecar', 'agent']);
    assert.equal(pod.metadata?.labels?.['chaperone.dev/injected'], 'true');
    const status = JSON.parse(pod.metadata?.annotations?.['chaperone.dev/status'] ?? '{}') as {
      mode: string;
      removedVolumes: string[];
    };
    assert.equal(status.mode, 'classic', 'Kubernetes 1.20 has no native sidecars');
    assert.match(status.removedVolumes[0] ?? '', /^kube-api-access-/);
    assert.equal(pod.metadata?.annotations?.['kubectl.kubernetes.io/default-container'], 'agent');
    assert.equal(pod.spec.automountServiceAccountToken, false);

    // Custody, judged on the pod as stored (built-in admission ran again after the webhook).
    assert.deepEqual(custodyViolations(pod), []);
    const agent = pod.spec.containers.find((c) => c.name === 'agent');
    assert.ok(agent);
    assert.deepEqual(
      agent.volumeMounts?.map((m) => [m.name, m.mountPath, m.readOnly]),
      [['chaperone-agent-sa', SA_PATH, true]],
      'the agent sees only the placeholder at the service-account path',
    );
    for (const v of pod.spec.volumes ?? []) {
      const hasToken = v.projected?.sources.some((s) => s.serviceAccountToken) ?? false;
      assert.ok(
        !hasToken || v.name === 'chaperone-token',
        `only the sidecar's volume holds a token (${v.name})`,
      );
      assert.ok(
        !/-token-[a-z0-9]{5}$/.test(v.secret?.secretName ?? ''),
        `no legacy token Secret (${v.name})`,
      );
    }
    const sidecar = pod.spec.containers[0];
    assert.ok(sidecar?.volumeMounts?.some((m) => m.name === 'chaperone-token'));
    const env = Object.fromEntries((agent.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env.KUBERNETES_SERVICE_HOST, '127.0.0.1');
    assert.equal(env.KUBERNETES_SERVICE_PORT, '6443');

    // Injecting the stored pod again changes nothing.
    const check = chaperone(['check-inject', `${ns}/bare`]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, new RegExp(`^${ns}/bare: injected and up to date`));
    assert.match(check.stdout, /no agent container can read a Kubernetes credential/);
  });

  it('injects the pods of a Deployment and of a Job', async () => {
    let r = run(['create', 'deployment', 'web', '--image=nginx:1.27', '-n', ns]);
    assert.equal(r.code, 0, r.stderr);
    r = run(['create', 'job', 'once', '--image=busybox:1.36', '-n', ns, '--', 'true']);
    assert.equal(r.code, 0, r.stderr);
    for (const selector of ['app=web', 'job-name=once']) {
      const pod = await waitFor(
        async () =>
          (
            kubectlJson(kube.kubeconfigPath, ['get', 'pods', '-n', ns, '-l', selector, '-o', 'json']) as {
              items: Pod[];
            }
          ).items[0],
        { what: `a pod for ${selector}`, timeoutMs: 60_000, intervalMs: 250 },
      );
      assert.equal(pod.spec.containers[0]?.name, 'chaperone-sidecar', selector);
      assert.deepEqual(custodyViolations(pod), [], selector);
    }
  });

  it('injects pods created by an agent’s own identity the same way', () => {
    run(['create', 'serviceaccount', 'agent', '-n', ns]);
    let r = run(['create', 'role', 'make-pods', '--verb=create,get', '--resource=pods', '-n', ns]);
    assert.equal(r.code, 0, r.stderr);
    r = run([
      'create',
      'rolebinding',
      'agent-makes-pods',
      '--role=make-pods',
      `--serviceaccount=${ns}:agent`,
      '-n',
      ns,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const tr = kubectlJson(
      kube.kubeconfigPath,
      ['create', '--raw', `/api/v1/namespaces/${ns}/serviceaccounts/agent/token`, '-f', '-'],
      JSON.stringify({
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: { expirationSeconds: 600 },
      }),
    ) as { status: { token: string } };
    r = run(['--token', tr.status.token, 'create', '-n', ns, '-f', '-'], podManifest('spawned'));
    assert.equal(r.code, 0, r.stderr);
    const pod = getPod(ns, 'spawned');
    assert.equal(pod.spec.containers[0]?.name, 'chaperone-sidecar');
    assert.deepEqual(custodyViolations(pod), []);
  });

  it('leaves pods in a namespace that did not opt in alone', () => {
    createPod(plain, podManifest('untouched'));
    const pod = getPod(plain, 'untouched');
    assert.deepEqual(
      pod.spec.containers.map((c) => c.name),
      ['agent'],
    );
    assert.ok(
      pod.spec.containers[0]?.volumeMounts?.some(
        (m) => m.mountPath === SA_PATH && m.name.startsWith('kube-api-access-'),
      ),
      'the real token is mounted (nothing guards this pod)',
    );
    const check = chaperone(['check-inject', `${plain}/untouched`]);
    assert.match(check.stdout, /not injected: the namespace is not opted in/);
    assert.match(check.stdout, /label chaperone\.dev\/inject must be "enabled" \(it is missing\)/);
  });

  it('honours the opt-out annotation of an exempt admin, and says why', async () => {
    const before =
      (await inj.metric('chaperone_injector_admissions_total{result="skipped",reason="opted_out"}')) ?? 0;
    const exemptBefore =
      (await inj.metric('chaperone_injector_validations_total{result="exempt",reason="opted_out"}')) ?? 0;
    const r = run(
      ['create', '-n', ns, '-f', '-'],
      podManifest('opted-out', { annotations: { 'chaperone.dev/inject': 'false' } }),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /Warning: chaperone: admitted because group system:masters is exempt: pod opted-out runs without the Chaperone sidecar \(opted_out\)/,
    );
    const pod = getPod(ns, 'opted-out');
    assert.deepEqual(
      pod.spec.containers.map((c) => c.name),
      ['agent'],
    );
    assert.equal(pod.metadata?.labels?.['chaperone.dev/injected'], undefined);
    const afterCount = await inj.metric(
      'chaperone_injector_admissions_total{result="skipped",reason="opted_out"}',
    );
    assert.equal(afterCount, before + 1, 'the webhook saw the pod and skipped it by reason');
    const check = chaperone(['check-inject', `${ns}/opted-out`]);
    assert.match(check.stdout, /skipped \(opted_out\)/);
    assert.match(check.stdout, /created by an identity the cluster admin exempted/);
    assert.equal(
      await inj.metric('chaperone_injector_validations_total{result="exempt",reason="opted_out"}'),
      exemptBefore + 1,
      'the validating webhook saw the pod and admitted it by exemption',
    );
  });

  it('shows the injection in a server-side dry run, without creating anything', () => {
    const r = run(['run', 'dry', '--image=busybox:1.36', '-n', ns, '--dry-run=server', '-o', 'yaml']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /name: chaperone-sidecar/);
    assert.match(r.stdout, /chaperone\.dev\/injected: "true"/);
    assert.match(r.stdout, /automountServiceAccountToken: false/);
    const created = run(
      ['create', '--dry-run=server', '-o', 'json', '-n', ns, '-f', '-'],
      podManifest('dry2'),
    );
    assert.equal(created.code, 0, created.stderr);
    assert.equal((JSON.parse(created.stdout) as Pod).spec.containers[0]?.name, 'chaperone-sidecar');
    assert.notEqual(run(['get', 'pod', 'dry', '-n', ns]).code, 0, 'the dry run created no pod');
    assert.notEqual(run(['get', 'pod', 'dry2', '-n', ns]).code, 0, 'the dry run created no pod');
  });

  it('rejects a pod with an invalid override, naming the annotation', () => {
    const r = run(
      ['create', '-n', ns, '-f', '-'],
      podManifest('bad', { annotations: { 'chaperone.dev/kube-port': '99999' } }),
    );
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /denied the request: chaperone: chaperone\.dev\/kube-port: 99999 is not a port number/,
    );
    assert.notEqual(run(['get', 'pod', 'bad', '-n', ns]).code, 0);
    const typo = run(
      ['create', '-n', ns, '-f', '-'],
      podManifest('typo', { annotations: { 'chaperone.dev/log-levle': 'debug' } }),
    );
    assert.notEqual(typo.code, 0);
    assert.match(
      typo.stderr,
      /chaperone\.dev\/log-levle: unknown Chaperone annotation \(did you mean chaperone\.dev\/log-level\?\)/,
    );
  });

  it('applies per-pod overrides and keeps database credentials in the sidecar', () => {
    run(['create', 'secret', 'generic', 'orders-db', '--from-literal=password=s3cret', '-n', ns]);
    createPod(
      ns,
      podManifest('tuned', {
        annotations: {
          'chaperone.dev/kube-port': '7443',
          'chaperone.dev/databases': 'orders=orders-db',
          'chaperone.dev/memory-limit': '0.5Gi',
        },
      }),
    );
    const pod = getPod(ns, 'tuned');
    const [sidecar, agent] = pod.spec.containers;
    const env = Object.fromEntries((agent?.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env.KUBERNETES_SERVICE_PORT, '7443');
    assert.equal(env.PGHOST, '127.0.0.1');
    assert.equal(env.PGPORT, '5432');
    const dbVolume = pod.spec.volumes?.find((v) => v.secret?.secretName === 'orders-db');
    assert.ok(dbVolume);
    assert.ok(sidecar?.volumeMounts?.some((m) => m.name === dbVolume.name));
    assert.ok(
      !agent?.volumeMounts?.some((m) => m.name === dbVolume.name),
      'the agent does not mount the credentials',
    );
    assert.equal(
      (sidecar?.resources as { limits?: { memory?: string } } | undefined)?.limits?.memory,
      '512Mi',
    );
    const check = chaperone(['check-inject', `${ns}/tuned`]);
    assert.match(check.stdout, /injected and up to date/);
  });

  it('answers malformed and oversized AdmissionReviews with 400, and keeps serving', async () => {
    const ca = webhookCaBundle(kube, inj);
    const bad = await postToWebhook(inj.url, ca, '{"kind":"AdmissionReview"');
    assert.equal(bad.status, 400);
    assert.match(bad.body, /malformed AdmissionReview: the body is not valid JSON/);
    const wrong = await postToWebhook(
      inj.url,
      ca,
      JSON.stringify({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1beta1' }),
    );
    assert.equal(wrong.status, 400);
    assert.match(wrong.body, /apiVersion: must be "admission\.k8s\.io\/v1"/);
    const huge = await postToWebhook(inj.url, ca, JSON.stringify({ pad: 'x'.repeat(5 * 1024 * 1024) }));
    assert.equal(huge.status, 400);
    assert.match(huge.body, /limit is 4194304 bytes/);
    createPod(ns, podManifest('still-fine'));
    assert.equal(getPod(ns, 'still-fine').spec.containers[0]?.name, 'chaperone-sidecar');
  });
});
