// The injector's validating webhook against the real control plane: in an
// opted-in namespace, a non-exempt identity talking straight to the API server
// (a ServiceAccount token, no sidecar in between) cannot start a pod without
// the sidecar by any route — opt-out label or annotation, hostNetwork, a
// Deployment whose template opts out (created by the replicaset controller) —
// nor take an injected pod or the namespace out of Chaperone. Identities the
// admin exempted can.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { custodyViolations, type Pod } from '@chaperone/injector';
import { kubeInfo } from './environment.ts';
import {
  deleteNamespace,
  type Injector,
  optInNamespace,
  podManifest,
  serviceAccountToken,
  startInjector,
  waitUntilInjecting,
} from './injector-harness.ts';
import { kubectl, kubectlJson } from './kubectl.ts';
import { waitFor } from './process.ts';

const EXEMPT_USER = 'e2e-platform-admin';
const EXEMPT_GROUP = 'chaperone-e2e-admins';
/** A group with the same RBAC as the exempt ones, but no exemption. */
const OTHER_GROUP = 'chaperone-e2e-developers';
const DENIED = /admission webhook "validate\.chaperone\.dev" denied the request: chaperone: /;

describe('injector: nothing unguarded in an opted-in namespace', () => {
  const kube = kubeInfo();
  let inj: Injector;
  let ns: string;
  /** Token of ServiceAccount `agent` in `ns`: may create pods and Deployments, label pods and namespaces. */
  let token: string;
  const cleanups: (() => void)[] = [];

  const admin = (args: string[], input?: string) =>
    kubectl(kube.kubeconfigPath, args, input === undefined ? {} : { input });
  const must = (args: string[], input?: string) => {
    const r = admin(args, input);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  /** kubectl as the agent's ServiceAccount, straight to the API server. */
  const asAgent = (args: string[], input?: string) =>
    kubectl(kube.kubeconfigPath, ['--token', token, ...args], input === undefined ? {} : { input });
  const getPod = (name: string) =>
    kubectlJson(kube.kubeconfigPath, ['get', 'pod', name, '-n', ns, '-o', 'json']) as Pod;
  const exists = (kind: string, name: string) => admin(['get', kind, name, '-n', ns]).code === 0;

  before(async () => {
    inj = await startInjector(kube, {
      args: [`--exempt-users=${EXEMPT_USER}`, `--exempt-groups=${EXEMPT_GROUP}`],
    });
    // Lets each test's agent change namespaces: RBAC is not what stops it.
    must([
      'create',
      'clusterrole',
      `${inj.instance}-ns-editor`,
      '--verb=get,update,patch',
      '--resource=namespaces,namespaces/status,namespaces/finalize',
    ]);
    must([
      'create',
      'clusterrolebinding',
      `${inj.instance}-exempt-ns`,
      `--clusterrole=${inj.instance}-ns-editor`,
      `--group=${EXEMPT_GROUP}`,
    ]);
    cleanups.push(() =>
      admin([
        'delete',
        'clusterrole,clusterrolebinding',
        `${inj.instance}-ns-editor`,
        `${inj.instance}-exempt-ns`,
        '--ignore-not-found',
      ]),
    );
  });
  after(async () => {
    for (const c of cleanups.reverse()) c();
    await inj?.cleanup();
  });

  // Each test gets its own opted-in namespace with a fresh agent identity.
  beforeEach(async () => {
    ns = optInNamespace(kube, inj, 'validate');
    must(['create', 'serviceaccount', 'agent', '-n', ns]);
    must([
      'create',
      'rolebinding',
      'agent-edits',
      '--clusterrole=edit',
      `--serviceaccount=${ns}:agent`,
      '-n',
      ns,
    ]);
    must([
      'create',
      'clusterrolebinding',
      `${ns}-agent-ns`,
      `--clusterrole=${inj.instance}-ns-editor`,
      `--serviceaccount=${ns}:agent`,
    ]);
    // The exempt identities reach the namespace by impersonation (as an OIDC user or group would).
    must([
      'create',
      'rolebinding',
      'platform-admins',
      '--clusterrole=admin',
      `--user=${EXEMPT_USER}`,
      `--group=${EXEMPT_GROUP}`,
      `--group=${OTHER_GROUP}`,
      '-n',
      ns,
    ]);
    must(['create', 'role', 'pod-status', '--verb=get,update,patch', '--resource=pods/status', '-n', ns]);
    must([
      'create',
      'rolebinding',
      'agent-pod-status',
      '--role=pod-status',
      `--serviceaccount=${ns}:agent`,
      '-n',
      ns,
    ]);
    token = serviceAccountToken(kube, ns, 'agent');
    await waitUntilInjecting(kube, ns);
  });
  afterEach(() => {
    admin(['delete', 'clusterrolebinding', `${ns}-agent-ns`, '--ignore-not-found']);
    deleteNamespace(kube, ns);
  });

  it('refuses opt-out pods (label, annotation) and hostNetwork pods, and says why and what to do', async () => {
    const requester = `requester: system:serviceaccount:${ns}:agent`;
    const deniedBefore =
      (await inj.metric('chaperone_injector_validations_total{result="denied",reason="opted_out_label"}')) ??
      0;
    const cases: [string, string, RegExp][] = [
      [
        'by-label',
        podManifest('by-label', { labels: { 'chaperone.dev/inject': 'false' } }),
        /it carries the opt-out label chaperone\.dev\/inject=false\. An agent pod must never start unguarded\. Remove the label and the pod is injected\./,
      ],
      [
        'by-annotation',
        podManifest('by-annotation', { annotations: { 'chaperone.dev/inject': 'false' } }),
        /it carries the opt-out annotation chaperone\.dev\/inject: "false"/,
      ],
      [
        'host-net',
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'host-net' },
          spec: { hostNetwork: true, containers: [{ name: 'agent', image: 'busybox:1.36' }] },
        }),
        /hostNetwork: true/,
      ],
    ];
    for (const [name, manifest, why] of cases) {
      const r = asAgent(['create', '-n', ns, '-f', '-'], manifest);
      assert.notEqual(r.code, 0, `${name} must not be admitted`);
      assert.match(r.stderr, DENIED, name);
      assert.match(
        r.stderr,
        new RegExp(`pod ${name} would run without the Chaperone sidecar in namespace ${ns}`),
      );
      assert.match(r.stderr, why, name);
      assert.match(
        r.stderr,
        /create it in a namespace that is not opted in, or ask the cluster admin to exempt/,
      );
      assert.ok(r.stderr.includes(requester), r.stderr);
      assert.equal(exists('pod', name), false, `${name} was not stored`);
    }
    assert.equal(
      await inj.metric('chaperone_injector_validations_total{result="denied",reason="opted_out_label"}'),
      deniedBefore + 1,
    );
  });

  it('admits a normal pod of the same identity, injected and in custody', () => {
    const r = asAgent(['create', '-n', ns, '-f', '-'], podManifest('normal'));
    assert.equal(r.code, 0, r.stderr);
    const pod = getPod('normal');
    assert.equal(pod.spec.containers[0]?.name, 'chaperone-sidecar');
    assert.equal(pod.metadata?.labels?.['chaperone.dev/injected'], 'true');
    assert.deepEqual(custodyViolations(pod), []);
  });

  it('a Deployment whose template opts out gets no pod; the ReplicaSet shows the refusal', async () => {
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'sneaky' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'sneaky' } },
        template: {
          metadata: { labels: { app: 'sneaky' }, annotations: { 'chaperone.dev/inject': 'false' } },
          spec: { containers: [{ name: 'agent', image: 'busybox:1.36', command: ['sleep', '3600'] }] },
        },
      },
    };
    const r = asAgent(['create', '-n', ns, '-f', '-'], JSON.stringify(deployment));
    assert.equal(r.code, 0, `the Deployment itself is accepted: ${r.stderr}`);
    const event = await waitFor(
      async () => {
        const list = kubectlJson(kube.kubeconfigPath, [
          'get',
          'events',
          '-n',
          ns,
          '--field-selector',
          'involvedObject.kind=ReplicaSet,reason=FailedCreate',
          '-o',
          'json',
        ]) as { items: { message: string; involvedObject: { name: string } }[] };
        return list.items[0];
      },
      { what: 'the ReplicaSet’s FailedCreate event', timeoutMs: 60_000, intervalMs: 250 },
    );
    assert.match(event.involvedObject.name, /^sneaky-/);
    assert.match(event.message, DENIED);
    assert.match(event.message, /opt-out annotation chaperone\.dev\/inject: "false"/);
    assert.match(event.message, /requester: system:serviceaccount:kube-system:replicaset-controller/);
    const pods = kubectlJson(kube.kubeconfigPath, [
      'get',
      'pods',
      '-n',
      ns,
      '-l',
      'app=sneaky',
      '-o',
      'json',
    ]) as {
      items: Pod[];
    };
    assert.deepEqual(pods.items, [], 'no pod of the Deployment exists');
  });

  it('refuses taking an injected pod out of the guard: labels, status annotation, sidecar', () => {
    let r = asAgent(['create', '-n', ns, '-f', '-'], podManifest('guarded'));
    assert.equal(r.code, 0, r.stderr);
    r = asAgent(['label', 'pod', 'guarded', '-n', ns, 'chaperone.dev/injected-']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, DENIED);
    assert.match(
      r.stderr,
      new RegExp(
        `pod guarded in namespace ${ns} is guarded by Chaperone, and this update would remove its label chaperone\\.dev/injected`,
      ),
    );
    // The status subresource can change labels too (it keeps only the spec).
    r = asAgent([
      'patch',
      'pod',
      'guarded',
      '-n',
      ns,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ metadata: { labels: { 'chaperone.dev/injected': null } } }),
    ]);
    assert.notEqual(r.code, 0, 'no route around it through pods/status');
    assert.match(r.stderr, /this update would remove its label chaperone\.dev\/injected/);
    r = asAgent(['annotate', 'pod', 'guarded', '-n', ns, '--overwrite', 'chaperone.dev/status={}']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /change its annotation chaperone\.dev\/status/);
    r = asAgent(['set', 'image', 'pod/guarded', '-n', ns, 'chaperone-sidecar=busybox:1.36']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /change its chaperone-sidecar container \(at \/image\)/);
    const pod = getPod('guarded');
    assert.equal(pod.metadata?.labels?.['chaperone.dev/injected'], 'true', 'still marked');
    const sidecar = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find(
      (c) => c.name === 'chaperone-sidecar',
    );
    assert.ok(sidecar, 'the pod has its sidecar');
    assert.notEqual(sidecar.image, 'busybox:1.36', 'the sidecar is unchanged');
    // Updates that leave the guard alone pass.
    r = asAgent(['label', 'pod', 'guarded', '-n', ns, 'team=blue']);
    assert.equal(r.code, 0, r.stderr);
    r = asAgent(['set', 'image', 'pod/guarded', '-n', ns, 'agent=busybox:1.37']);
    assert.equal(r.code, 0, r.stderr);
  });

  it('admits the opt-out pods of exempt identities (user, group), with a warning', () => {
    let r = admin(
      ['--as', EXEMPT_USER, 'create', '-n', ns, '-f', '-'],
      podManifest('exempt-user', { labels: { 'chaperone.dev/inject': 'false' } }),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `Warning: chaperone: admitted because user ${EXEMPT_USER} is exempt: pod exempt-user runs without the Chaperone sidecar \\(opted_out_label\\)`,
      ),
    );
    assert.deepEqual(
      getPod('exempt-user').spec.containers.map((c) => c.name),
      ['agent'],
    );
    r = admin(
      ['--as', 'carol', '--as-group', EXEMPT_GROUP, 'create', '-n', ns, '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'exempt-group' },
        spec: { hostNetwork: true, containers: [{ name: 'agent', image: 'busybox:1.36' }] },
      }),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`admitted because group ${EXEMPT_GROUP} is exempt`));
    // The same request from a non-exempt impersonated user is refused: the exemption is the identity's.
    r = admin(
      ['--as', 'carol', '--as-group', OTHER_GROUP, 'create', '-n', ns, '-f', '-'],
      podManifest('not-exempt', { labels: { 'chaperone.dev/inject': 'false' } }),
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /requester: carol/);
  });

  it('refuses removing the namespace’s opt-in label, except to an exempt identity', () => {
    let r = asAgent(['label', 'namespace', ns, 'chaperone.dev/inject-']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /admission webhook "namespace\.chaperone\.dev" denied the request: chaperone: /);
    assert.match(
      r.stderr,
      new RegExp(
        `namespace ${ns} is opted in to Chaperone, and this update would take it out of Chaperone \\(label chaperone\\.dev/inject must be "enabled" \\(it is missing\\)\\)`,
      ),
    );
    r = asAgent([
      'label',
      'namespace',
      ns,
      '--overwrite',
      `chaperone.dev/revision=r${randomBytes(4).toString('hex')}`,
    ]);
    assert.notEqual(r.code, 0, 'moving it to a revision nobody serves is refused too');
    for (const subresource of ['status', 'finalize']) {
      const stored = kubectlJson(kube.kubeconfigPath, ['get', 'namespace', ns, '-o', 'json']) as {
        metadata: { labels: Record<string, string> };
      };
      delete stored.metadata.labels['chaperone.dev/inject'];
      r = kubectl(
        kube.kubeconfigPath,
        ['--token', token, 'replace', '--raw', `/api/v1/namespaces/${ns}/${subresource}`, '-f', '-'],
        { input: JSON.stringify(stored) },
      );
      assert.notEqual(r.code, 0, `no route around it through namespaces/${subresource}`);
      assert.match(r.stderr, /namespace\.chaperone\.dev|would take it out of Chaperone/, r.stderr);
    }
    r = asAgent(['label', 'namespace', ns, 'team=blue']);
    assert.equal(r.code, 0, `other labels may change: ${r.stderr}`);
    const labels = (
      kubectlJson(kube.kubeconfigPath, ['get', 'namespace', ns, '-o', 'json']) as {
        metadata: { labels: Record<string, string> };
      }
    ).metadata.labels;
    assert.equal(labels['chaperone.dev/inject'], 'enabled');
    assert.equal(labels['chaperone.dev/revision'], inj.revision);
    r = admin([
      '--as',
      'dana',
      '--as-group',
      EXEMPT_GROUP,
      'label',
      'namespace',
      ns,
      'chaperone.dev/inject-',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /Warning: chaperone: admitted because group chaperone-e2e-admins is exempt: namespace/,
    );
  });

  it('repairs its ValidatingWebhookConfiguration when edited or deleted', async () => {
    type Config = {
      webhooks: {
        name: string;
        failurePolicy: string;
        objectSelector: unknown;
        clientConfig: { caBundle?: string };
      }[];
    };
    const get = () =>
      kubectlJson(kube.kubeconfigPath, [
        'get',
        'validatingwebhookconfiguration',
        inj.instance,
        '-o',
        'json',
      ]) as Config;
    const original = get();
    assert.deepEqual(
      original.webhooks.map((w) => [w.name, w.failurePolicy]),
      [
        ['validate.chaperone.dev', 'Fail'],
        ['namespace.chaperone.dev', 'Fail'],
      ],
    );
    const mutating = kubectlJson(kube.kubeconfigPath, [
      'get',
      'mutatingwebhookconfiguration',
      inj.instance,
      '-o',
      'json',
    ]) as Config;
    assert.equal(original.webhooks[0]?.clientConfig.caBundle, mutating.webhooks[0]?.clientConfig.caBundle);
    let r = admin([
      'patch',
      'validatingwebhookconfiguration',
      inj.instance,
      '--type=json',
      '-p',
      JSON.stringify([
        { op: 'replace', path: '/webhooks/0/failurePolicy', value: 'Ignore' },
        {
          op: 'replace',
          path: '/webhooks/0/objectSelector',
          value: {
            matchExpressions: [{ key: 'chaperone.dev/inject', operator: 'NotIn', values: ['false'] }],
          },
        },
      ]),
    ]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(async () => JSON.stringify(get().webhooks) === JSON.stringify(original.webhooks), {
      what: 'the injector to repair its ValidatingWebhookConfiguration',
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    r = admin(['delete', 'validatingwebhookconfiguration', inj.instance]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(
      async () =>
        admin(['get', 'validatingwebhookconfiguration', inj.instance]).code === 0 &&
        JSON.stringify(get().webhooks) === JSON.stringify(original.webhooks),
      {
        what: 'the injector to recreate its ValidatingWebhookConfiguration',
        timeoutMs: 20_000,
        intervalMs: 200,
      },
    );
    await waitUntilInjecting(kube, ns);
    assert.ok(
      ((await inj.metric(
        'chaperone_injector_webhook_configuration_actions_total{configuration="validating",action="repaired"}',
      )) ?? 0) >= 1,
    );
  });
});
