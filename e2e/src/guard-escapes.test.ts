// The ways out of the guard an agent bound to cluster-admin would try, each
// through a real `chaperone sidecar` in front of the real kube-apiserver, with
// the real kubectl and raw HTTPS: minting credentials, reading masked values
// back through patches and error messages, starting unguarded workloads
// (directly, through controller revisions and status, through custom
// resources), unguarded routes, taking a pod out of Chaperone's selectors.
// The policy allows everything: only the built-in rules stand in the way.
// What an agent should still be able to do is checked too, and a canary
// Secret value must appear in no response, log or spool file.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DependencyError } from '@chaperone/shared';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import { readSpoolDir } from '@chaperone/sidecar';
import { Agent, request } from 'undici';
import { createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { type KubectlResult, kubectl } from './kubectl.ts';
import { waitFor } from './process.ts';
import { ALLOW_ALL, requestAsAgent, type SidecarUnderTest, startSidecar } from './sidecar-harness.ts';

const CANARY = 'canary-escape-5e1b9c-do-not-leak';
const CANARY_B64 = Buffer.from(CANARY).toString('base64');

/** A fresh certificate request (openssl, an ordinary e2e dependency); its key is thrown away. */
function certificateRequest(): string {
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      '/CN=evil',
      '-keyout',
      '/dev/null',
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new DependencyError(`openssl could not make a certificate request: ${r.stderr}`);
  return r.stdout;
}

describe('guard escapes: refused by built-in rules, whatever the policy', () => {
  const kube = kubeInfo();
  let ns: TestNamespace;
  let plain: TestNamespace;
  let sc: SidecarUnderTest;
  let dispatcher: Agent;
  /** Everything the agent was shown, checked for the canary at the end. */
  const seen: string[] = [];
  const agent = (args: string[], input?: string): KubectlResult => {
    const r = kubectl(sc.agentKubeconfig, [...args, '--cache-dir', join(sc.dir, 'kube-cache')], {
      ...(input !== undefined ? { input } : {}),
    });
    seen.push(r.stdout, r.stderr);
    return r;
  };
  const admin = (args: string[], input?: string) =>
    kubectl(kube.kubeconfigPath, args, input !== undefined ? { input } : {});
  const raw = async (method: string, path: string, body?: unknown, type?: string) => {
    const { status, text } = await requestAsAgent(sc, dispatcher, method, path, body, type);
    seen.push(text);
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // not JSON: the tests assert on status and text
    }
    return { status, text, json };
  };
  let adminDispatcher: Agent | undefined;
  /** The API server itself, as the admin (to show what the guard stands in front of). */
  const adminRaw = async (method: string, path: string, body?: string, type = 'application/json') => {
    const config = readFileSync(kube.kubeconfigPath, 'utf8');
    const token = /token: (\S+)/.exec(config)?.[1];
    if (!token) throw new DependencyError('the admin kubeconfig has no token');
    adminDispatcher ??= new Agent({ connect: { ca: kube.caCert } });
    const r = await request(`${kube.server}${path}`, {
      method: method as 'GET',
      dispatcher: adminDispatcher,
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/json',
        ...(body !== undefined ? { 'content-type': type } : {}),
      },
      ...(body !== undefined ? { body } : {}),
    });
    return { status: r.statusCode, text: await r.body.text() };
  };
  const refused = (r: KubectlResult, rule: string) => {
    assert.notEqual(r.code, 0, `expected a refusal by ${rule}, got success: ${r.stdout}`);
    assert.ok(r.stderr.includes(`chaperone: denied by rule "${rule}"`), r.stderr);
  };
  const ok = (r: KubectlResult) => assert.equal(r.code, 0, r.stderr);
  const pod = (name: string, extra: Record<string, unknown> = {}, meta: Record<string, unknown> = {}) =>
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, ...meta },
      spec: { containers: [{ name: 'app', image: 'nginx:1.27' }], ...extra },
    });

  before(async () => {
    ns = await createNamespace('escapes', { 'chaperone.dev/inject': 'enabled' });
    plain = await createNamespace('plain');
    sc = await startSidecar({ namespace: ns.name, policy: ALLOW_ALL });
    dispatcher = new Agent({ connect: { ca: sc.agentCa } });
    ok(admin(['create', 'secret', 'generic', 'canary', '-n', ns.name, `--from-literal=password=${CANARY}`]));
    ok(agent(['create', 'deployment', 'web', '--image=nginx:1.25']));
  });
  after(async () => {
    await adminDispatcher?.close();
    await dispatcher?.close();
    await sc?.stop();
    await ns?.delete();
    await plain?.delete();
  });

  describe('no credential minting', () => {
    it('kubectl create token is refused', () => {
      refused(agent(['create', 'token', 'agent']), 'chaperone-no-token-request');
      refused(agent(['create', 'token', 'default', '-n', plain.name]), 'chaperone-no-token-request');
    });

    it('a raw TokenRequest is refused with a Status naming the rule', async () => {
      const r = await raw('POST', `/api/v1/namespaces/${ns.name}/serviceaccounts/agent/token`, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: { audiences: ['https://kubernetes.default.svc'] },
      });
      assert.equal(r.status, 403);
      assert.equal(r.json.kind, 'Status');
      assert.match(String(r.json.message), /chaperone-no-token-request/);
      assert.equal(r.text.includes('"token"'), false);
    });

    it('service-account-token and bootstrap-token Secrets cannot be created', () => {
      const secret = (type: string, ann: Record<string, string> = {}) =>
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: 'tok', annotations: ann },
          type,
        });
      refused(
        agent(
          ['create', '-f', '-'],
          secret('kubernetes.io/service-account-token', { 'kubernetes.io/service-account.name': 'agent' }),
        ),
        'chaperone-no-token-secrets',
      );
      refused(
        agent(['create', '-n', 'kube-system', '-f', '-'], secret('bootstrap.kubernetes.io/token')),
        'chaperone-no-token-secrets',
      );
      assert.notEqual(admin(['get', 'secret', 'tok', '-n', ns.name]).code, 0);
    });

    it('CertificateSigningRequests cannot be created or approved', () => {
      const csr = JSON.stringify({
        apiVersion: 'certificates.k8s.io/v1',
        kind: 'CertificateSigningRequest',
        metadata: { name: `evil-${ns.name}` },
        spec: {
          request: Buffer.from(certificateRequest()).toString('base64'),
          signerName: 'kubernetes.io/kube-apiserver-client',
          usages: ['client auth'],
        },
      });
      refused(agent(['create', '-f', '-'], csr), 'chaperone-no-certificate-requests');
      ok(admin(['create', '-f', '-'], csr));
      try {
        refused(agent(['certificate', 'approve', `evil-${ns.name}`]), 'chaperone-no-certificate-requests');
        const cond = admin(['get', 'csr', `evil-${ns.name}`, '-o', 'jsonpath={.status.conditions}']);
        assert.equal(cond.stdout.includes('Approved'), false);
      } finally {
        admin(['delete', 'csr', `evil-${ns.name}`, '--ignore-not-found']);
      }
    });

    it('Secret values stay masked although the policy allows everything', () => {
      const r = agent(['get', 'secret', 'canary', '-o', 'yaml']);
      ok(r);
      assert.match(r.stdout, /password: KiptYXNrZWQqKg==/);
      const patched = agent(['label', 'secret', 'canary', 'seen=yes', '-o', 'json']);
      ok(patched);
      assert.match(patched.stdout, /KiptYXNrZWQqKg==/);
    });
  });

  describe('no unguarded workloads', () => {
    it('a pod with the opt-out label or annotation is refused', () => {
      refused(
        agent(['create', '-f', '-'], pod('out1', {}, { labels: { 'chaperone.dev/inject': 'false' } })),
        'chaperone-no-opt-out',
      );
      refused(
        agent(['create', '-f', '-'], pod('out2', {}, { annotations: { 'chaperone.dev/inject': 'false' } })),
        'chaperone-no-opt-out',
      );
      assert.notEqual(admin(['get', 'pod', 'out1', '-n', ns.name]).code, 0);
    });

    it('a hostNetwork pod is refused, naming what to change', () => {
      const r = agent(['create', '-f', '-'], pod('hostnet', { hostNetwork: true }));
      refused(r, 'chaperone-no-host-namespaces');
      assert.match(r.stderr, /spec\.hostNetwork/);
    });

    it("a pod cannot use the sidecar's container name or the injector's volume names", () => {
      refused(
        agent(
          ['create', '-f', '-'],
          pod('fake', { containers: [{ name: 'chaperone-sidecar', image: 'evil' }] }),
        ),
        'chaperone-no-reserved-names',
      );
      refused(
        agent(
          ['create', '-f', '-'],
          pod('vol', {
            containers: [
              { name: 'app', image: 'nginx', volumeMounts: [{ name: 'chaperone-token', mountPath: '/t' }] },
            ],
            volumes: [{ name: 'chaperone-token', emptyDir: {} }],
          }),
        ),
        'chaperone-no-reserved-names',
      );
    });

    it('a pod in a namespace that is not opted in is refused', () => {
      refused(
        agent(['run', 'elsewhere', '--image=nginx', '-n', plain.name]),
        'chaperone-no-unguarded-namespace',
      );
    });

    it('a Deployment with an opt-out template is refused, and so is a patch that adds it', () => {
      const dep = JSON.stringify({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'sneaky' },
        spec: {
          selector: { matchLabels: { app: 'sneaky' } },
          template: {
            metadata: { labels: { app: 'sneaky', 'chaperone.dev/inject': 'false' } },
            spec: { containers: [{ name: 'app', image: 'nginx' }] },
          },
        },
      });
      refused(agent(['create', '-f', '-'], dep), 'chaperone-no-opt-out');
      const patch = agent([
        'patch',
        'deployment',
        'web',
        '-p',
        '{"spec":{"template":{"metadata":{"annotations":{"chaperone.dev/inject":"false"}}}}}',
      ]);
      refused(patch, 'chaperone-no-opt-out');
      for (const type of ['merge', 'json']) {
        const p =
          type === 'json'
            ? '[{"op":"add","path":"/spec/template/spec/hostNetwork","value":true}]'
            : '{"spec":{"template":{"spec":{"hostNetwork":true}}}}';
        refused(
          agent(['patch', 'deployment', 'web', '--type', type, '-p', p]),
          'chaperone-no-host-namespaces',
        );
      }
      const stored = admin(['get', 'deployment', 'web', '-n', ns.name, '-o', 'json']);
      assert.equal(stored.stdout.includes('chaperone.dev/inject'), false);
      assert.equal(stored.stdout.includes('hostNetwork'), false);
    });

    it('kubectl set env --from=secret is refused', () => {
      const r = agent(['set', 'env', 'deployment/web', '--from=secret/canary']);
      refused(r, 'chaperone-no-unmasked-secrets');
      const stored = admin(['get', 'deployment', 'web', '-n', ns.name, '-o', 'json']);
      assert.equal(stored.stdout.includes('secretKeyRef'), false);
    });

    it('removing chaperone.dev/injected from an injected pod is refused, by label or through pods/status', async () => {
      ok(
        admin(
          ['create', '-n', ns.name, '-f', '-'],
          pod(
            'injected',
            {},
            {
              labels: { 'chaperone.dev/injected': 'true' },
              annotations: { 'chaperone.dev/status': '{"version":"test"}' },
            },
          ),
        ),
      );
      refused(agent(['label', 'pod', 'injected', 'chaperone.dev/injected-']), 'chaperone-keep-pod-guarded');
      refused(agent(['annotate', 'pod', 'injected', 'chaperone.dev/status-']), 'chaperone-keep-pod-guarded');
      const st = await raw(
        'PATCH',
        `/api/v1/namespaces/${ns.name}/pods/injected/status`,
        { metadata: { labels: { 'chaperone.dev/injected': null } } },
        'application/merge-patch+json',
      );
      assert.equal(st.status, 403, st.text);
      assert.match(String(st.json.message), /chaperone-keep-pod-guarded/);
      const label = admin(['get', 'pod', 'injected', '-n', ns.name, '-o', 'jsonpath={.metadata.labels}']);
      assert.match(label.stdout, /"chaperone.dev\/injected":"true"/);
      // Other labels are fine.
      ok(agent(['label', 'pod', 'injected', 'team=x']));
    });

    it('bodies the guard cannot read one way are refused: protobuf, duplicate keys', async () => {
      const proto = await raw(
        'POST',
        `/api/v1/namespaces/${ns.name}/pods`,
        'k8s\0',
        'application/vnd.kubernetes.protobuf',
      );
      assert.equal(proto.status, 415, proto.text);
      const dup = await raw(
        'POST',
        `/api/v1/namespaces/${ns.name}/pods`,
        `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"dup"},"spec":{"hostNetwork":true,"hostNetwork":false,"containers":[{"name":"a","image":"x"}]}}`,
      );
      assert.equal(dup.status, 400, dup.text);
      assert.match(String(dup.json.message), /repeated object key/);
      const yaml = await raw(
        'POST',
        `/api/v1/namespaces/${ns.name}/pods`,
        'apiVersion: v1\nkind: Pod\n',
        'application/yaml',
      );
      assert.equal(yaml.status, 415);
    });

    it('a patch held to a stale resourceVersion gets 409', async () => {
      const r = await raw(
        'PATCH',
        `/apis/apps/v1/namespaces/${ns.name}/deployments/web`,
        { metadata: { resourceVersion: '1', labels: { x: 'y' } } },
        'application/merge-patch+json',
      );
      assert.equal(r.status, 409, r.text);
    });
  });

  describe('no unguarded routes', () => {
    it('nodes, pods and services proxy are refused', async () => {
      refused(agent(['get', '--raw', '/api/v1/nodes/some-node/proxy/configz']), 'chaperone-no-proxy');
      refused(
        agent(['get', '--raw', `/api/v1/namespaces/${ns.name}/pods/injected/proxy/`]),
        'chaperone-no-proxy',
      );
      refused(
        agent(['get', '--raw', '/api/v1/namespaces/default/services/https:kubernetes:443/proxy/api']),
        'chaperone-no-proxy',
      );
      const post = await raw('POST', `/api/v1/namespaces/${ns.name}/pods/injected/proxy/x`, '{}');
      assert.equal(post.status, 403);
    });

    it('a namespace status patch that would remove the inject label is refused, and the label stays', async () => {
      const r = await raw(
        'PATCH',
        `/api/v1/namespaces/${ns.name}/status`,
        { metadata: { labels: { 'chaperone.dev/inject': null } } },
        'application/merge-patch+json',
      );
      assert.equal(r.status, 403, r.text);
      assert.match(String(r.json.message), /chaperone-protect-namespaces/);
      const f = await raw('PUT', `/api/v1/namespaces/${ns.name}/finalize`, { metadata: { name: ns.name } });
      assert.equal(f.status, 403);
      const label = admin([
        'get',
        'namespace',
        ns.name,
        '-o',
        'jsonpath={.metadata.labels.chaperone\\.dev/inject}',
      ]);
      assert.equal(label.stdout, 'enabled');
    });

    it('a NetworkPolicy that allows all egress is refused; an ingress-only one is not', () => {
      const np = (name: string, spec: Record<string, unknown>) =>
        JSON.stringify({
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { name },
          spec,
        });
      refused(
        agent(
          ['create', '-f', '-'],
          np('open-egress', { podSelector: {}, policyTypes: ['Egress'], egress: [{}] }),
        ),
        'chaperone-no-egress-policies',
      );
      ok(
        agent(
          ['create', '-f', '-'],
          np('ingress-only', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{}] }),
        ),
      );
      refused(
        agent([
          'patch',
          'networkpolicy',
          'ingress-only',
          '--type',
          'merge',
          '-p',
          '{"spec":{"policyTypes":["Ingress","Egress"],"egress":[{}]}}',
        ]),
        'chaperone-no-egress-policies',
      );
    });

    it('admission webhooks and APIServices cannot be changed', () => {
      const hook = JSON.stringify({
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingWebhookConfiguration',
        metadata: { name: `deny-injector-${ns.name}` },
        webhooks: [],
      });
      refused(agent(['create', '-f', '-'], hook), 'chaperone-protect-webhooks');
      refused(agent(['delete', 'apiservice', 'v1.apps']), 'chaperone-protect-apiservices');
    });
  });

  describe('kubectl auth can-i answers what the guard would do', () => {
    it('says no to what the guard refuses, yes to what it allows', () => {
      const no = agent(['auth', 'can-i', 'delete', 'namespaces']);
      assert.equal(no.code, 1, no.stderr);
      assert.match(no.stdout.trim(), /^no - chaperone: denied by rule "chaperone-protect-namespaces"/);
      const token = agent(['auth', 'can-i', 'create', 'serviceaccounts', '--subresource=token']);
      assert.match(token.stdout.trim(), /^no - chaperone: denied by rule "chaperone-no-token-request"/);
      const yes = agent(['auth', 'can-i', 'get', 'pods']);
      assert.equal(yes.code, 0, yes.stderr);
      assert.equal(yes.stdout.trim(), 'yes');
      // The API server itself says yes (the agent is cluster-admin): the no is the guard's.
      const direct = admin([
        'auth',
        'can-i',
        'delete',
        'namespaces',
        '--as',
        `system:serviceaccount:${ns.name}:agent`,
      ]);
      assert.equal(direct.stdout.trim(), 'yes');
    });

    it('can-i --list says the answer is incomplete', () => {
      const r = agent(['auth', 'can-i', '--list']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(`${r.stdout}${r.stderr}`, /Chaperone's guardrail policy/);
    });
  });

  describe('what an agent may do still works', () => {
    it('the agent cannot delete or evict its own pod (its unshipped audit events live there)', async () => {
      refused(agent(['delete', 'pod', sc.pod, '--wait=false']), 'chaperone-protect-own-pod');
      // A deletecollection of the namespace's pods would take it too (kubectl's --all deletes by name).
      const all = await raw('DELETE', `/api/v1/namespaces/${ns.name}/pods`);
      assert.equal(all.status, 403, all.text);
      assert.match(all.text, /chaperone-protect-own-pod/);
      const evict = await raw('POST', `/api/v1/namespaces/${ns.name}/pods/${sc.pod}/eviction`, {
        apiVersion: 'policy/v1beta1',
        kind: 'Eviction',
        metadata: { name: sc.pod, namespace: ns.name },
      });
      assert.equal(evict.status, 403, evict.text);
      assert.match(evict.text, /chaperone-protect-own-pod/);
      // Fails if the rule is dropped from self-protection.ts or the sidecar stops passing its pod name
      // (tried: without `pod` in the sidecar's protection, the delete reaches the API server).
    });

    it('scale, set image and rollout restart a normal Deployment; run a normal pod', () => {
      ok(agent(['scale', 'deployment', 'web', '--replicas=2']));
      ok(agent(['set', 'image', 'deployment/web', 'nginx=nginx:1.27']));
      ok(agent(['rollout', 'restart', 'deployment/web']));
      ok(agent(['label', 'deployment', 'web', 'tier=frontend']));
      ok(
        agent(
          ['apply', '--server-side', '-f', '-'],
          JSON.stringify({
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            metadata: { name: 'web', labels: { applied: 'yes' } },
          }),
        ),
      );
      const d = admin(['get', 'deployment', 'web', '-n', ns.name, '-o', 'json']);
      const dep = JSON.parse(d.stdout) as {
        metadata: { labels: Record<string, string> };
        spec: {
          replicas: number;
          template: {
            metadata: { annotations?: Record<string, string> };
            spec: { containers: { image: string }[] };
          };
        };
      };
      assert.equal(dep.spec.replicas, 2);
      assert.equal(dep.spec.template.spec.containers[0]?.image, 'nginx:1.27');
      assert.ok(dep.spec.template.metadata.annotations?.['kubectl.kubernetes.io/restartedAt']);
      assert.equal(dep.metadata.labels.applied, 'yes');
      ok(agent(['run', 'normal', '--image=nginx:1.27']));
      ok(
        agent(
          ['apply', '--server-side', '-f', '-'],
          JSON.stringify({
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            metadata: { name: 'created-by-apply' },
            spec: {
              selector: { matchLabels: { app: 'a' } },
              template: {
                metadata: { labels: { app: 'a' } },
                spec: { containers: [{ name: 'a', image: 'nginx' }] },
              },
            },
          }),
        ),
      );
    });
  });

  describe('masked values cannot be read back through patches or errors', () => {
    const SECRET = () => `/api/v1/namespaces/${ns.name}/secrets/canary`;
    const jsonPatch = (ops: unknown[]) => raw('PATCH', SECRET(), ops, 'application/json-patch+json');

    it('a JSON patch that copies, moves or tests a Secret value is refused, and nothing is stored', async () => {
      for (const op of [
        { op: 'copy', from: '/data/password', path: '/metadata/annotations/leak' },
        { op: 'move', from: '/data/password', path: '/metadata/labels/leak' },
        { op: 'test', path: '/data/password', value: CANARY_B64 },
      ]) {
        const r = await jsonPatch([{ op: 'add', path: '/metadata/annotations', value: {} }, op]);
        assert.equal(r.status, 403, r.text);
        assert.match(String(r.json.message), /chaperone-no-masked-value-patch/);
      }
      const stored = admin(['get', 'secret', 'canary', '-n', ns.name, '-o', 'json']);
      assert.equal(stored.stdout.includes('leak'), false);
    });

    it("a service-account token copied into a label is refused before the API server's error could quote it", async () => {
      const name = await waitFor(
        async () =>
          admin([
            'get',
            'secrets',
            '-n',
            ns.name,
            '-o',
            'jsonpath={.items[?(@.type=="kubernetes.io/service-account-token")].metadata.name}',
          ]).stdout.split(' ')[0] || undefined,
        { what: 'a service-account-token Secret in the namespace', timeoutMs: 30_000 },
      );
      const token = admin(['get', 'secret', name, '-n', ns.name, '-o', 'jsonpath={.data.token}']).stdout;
      assert.ok(token.length > 100);
      const r = await raw(
        'PATCH',
        `/api/v1/namespaces/${ns.name}/secrets/${name}`,
        [
          { op: 'add', path: '/metadata/labels', value: {} },
          { op: 'copy', from: '/data/token', path: '/metadata/labels/leak' },
        ],
        'application/json-patch+json',
      );
      assert.equal(r.status, 403, r.text);
      assert.equal(r.text.includes(token), false);
    });

    it("the API server's error about a Secret keeps its code and reason, never its words", async () => {
      // A patch that does not fit a Secret: the API server answers with the whole patched object in the message.
      const direct = await adminRaw(
        'PATCH',
        `${SECRET()}?dryRun=All`,
        '[{"op":"add","path":"/metadata/annotations","value":"x"}]',
        'application/json-patch+json',
      );
      assert.equal(direct.status, 422);
      assert.ok(
        direct.text.includes(CANARY_B64),
        'the API server itself quotes the value (what the guard withholds)',
      );
      const r = await jsonPatch([{ op: 'add', path: '/metadata/annotations', value: 'x' }]);
      assert.equal(r.status, 422, r.text);
      assert.equal(r.json.reason, 'Invalid');
      assert.match(String(r.json.message), /withheld/);
      assert.equal(r.text.includes(CANARY_B64), false);
    });
  });

  describe('no pods from templates the guard never read', () => {
    it('ControllerRevisions and workload status cannot be written, so a StatefulSet cannot be pointed at a forged revision', async () => {
      ok(
        admin(
          ['create', '-n', plain.name, '-f', '-'],
          JSON.stringify({
            apiVersion: 'apps/v1',
            kind: 'StatefulSet',
            metadata: { name: 'db' },
            spec: {
              replicas: 0,
              serviceName: 'db',
              selector: { matchLabels: { app: 'db' } },
              template: {
                metadata: { labels: { app: 'db' } },
                spec: { containers: [{ name: 'db', image: 'postgres:13' }] },
              },
            },
          }),
        ),
      );
      const uid = admin(['get', 'sts', 'db', '-n', plain.name, '-o', 'jsonpath={.metadata.uid}']).stdout;
      const forged = await raw('POST', `/apis/apps/v1/namespaces/${plain.name}/controllerrevisions`, {
        apiVersion: 'apps/v1',
        kind: 'ControllerRevision',
        metadata: {
          name: 'db-evil',
          labels: { app: 'db' },
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid, controller: true },
          ],
        },
        revision: 100,
        data: {
          spec: {
            template: {
              $patch: 'replace',
              spec: { hostNetwork: true, containers: [{ name: 'db', image: 'x' }] },
            },
          },
        },
      });
      assert.equal(forged.status, 403, forged.text);
      assert.match(String(forged.json.message), /chaperone-no-controller-revisions/);
      const status = await raw(
        'PATCH',
        `/apis/apps/v1/namespaces/${plain.name}/statefulsets/db/status`,
        { status: { currentRevision: 'db-evil' } },
        'application/merge-patch+json',
      );
      assert.equal(status.status, 403, status.text);
      assert.match(String(status.json.message), /chaperone-no-workload-status/);
      refused(
        agent(['delete', 'controllerrevisions', '--all', '-n', plain.name]),
        'chaperone-no-controller-revisions',
      );
      const dep = await raw(
        'PATCH',
        `/apis/apps/v1/namespaces/${ns.name}/deployments/web/status`,
        { status: { observedGeneration: 1 } },
        'application/merge-patch+json',
      );
      assert.equal(dep.status, 403, dep.text);
      assert.notEqual(admin(['get', 'controllerrevision', 'db-evil', '-n', plain.name]).code, 0);
      const current = admin([
        'get',
        'sts',
        'db',
        '-n',
        plain.name,
        '-o',
        'jsonpath={.status.currentRevision}',
      ]);
      assert.notEqual(current.stdout, 'db-evil');
      // Reading revisions (kubectl rollout history) still works.
      ok(agent(['get', 'controllerrevisions', '-n', plain.name]));
    });

    describe('custom resources that hold pod specs', () => {
      const group = () => `${ns.name}.example.com`;
      const runners = (namespace: string) => `/apis/${group()}/v1/namespaces/${namespace}/runners`;
      const runner = (name: string, spec: Record<string, unknown>) => ({
        apiVersion: `${group()}/v1`,
        kind: 'Runner',
        metadata: { name },
        spec,
      });
      const template = (podSpec: Record<string, unknown> = {}) => ({
        metadata: { labels: { app: 'r' } },
        spec: { containers: [{ name: 'r', image: 'nginx' }], ...podSpec },
      });
      before(async () => {
        ok(
          admin(
            ['create', '-f', '-'],
            JSON.stringify({
              apiVersion: 'apiextensions.k8s.io/v1',
              kind: 'CustomResourceDefinition',
              metadata: { name: `runners.${group()}` },
              spec: {
                group: group(),
                scope: 'Namespaced',
                names: { plural: 'runners', singular: 'runner', kind: 'Runner' },
                versions: [
                  {
                    name: 'v1',
                    served: true,
                    storage: true,
                    schema: {
                      openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                    },
                  },
                ],
              },
            }),
          ),
        );
        await waitFor(async () => (await raw('GET', runners(ns.name))).status === 200, {
          what: 'the Runner CRD to be served',
          timeoutMs: 30_000,
        });
      });
      after(() => {
        admin(['delete', 'crd', `runners.${group()}`, '--wait=false', '--ignore-not-found']);
      });

      it('a pod spec anywhere in a custom resource is held to the pod rules', async () => {
        const host = await raw(
          'POST',
          runners(ns.name),
          runner('host', { template: template({ hostNetwork: true }) }),
        );
        assert.equal(host.status, 403, host.text);
        assert.match(String(host.json.message), /chaperone-no-host-namespaces/);
        assert.match(String(host.json.message), /spec\.template\.spec\.hostNetwork/);
        const nested = await raw(
          'POST',
          runners(ns.name),
          runner('nested', {
            stages: [
              { pod: { containers: [{ name: 'a', image: 'x', securityContext: { privileged: true } }] } },
            ],
          }),
        );
        assert.equal(nested.status, 403, nested.text);
        assert.match(String(nested.json.message), /chaperone-no-privileged/);
        const elsewhere = await raw(
          'POST',
          runners(plain.name),
          runner('elsewhere', { template: template() }),
        );
        assert.equal(elsewhere.status, 403, elsewhere.text);
        assert.match(String(elsewhere.json.message), /chaperone-no-unguarded-namespace/);
        const fine = await raw('POST', runners(ns.name), runner('fine', { template: template() }));
        assert.equal(fine.status, 201, fine.text);
        const patch = agent([
          'patch',
          `runners.${group()}`,
          'fine',
          '--type',
          'merge',
          '-p',
          '{"spec":{"template":{"spec":{"hostPID":true}}}}',
        ]);
        refused(patch, 'chaperone-no-host-namespaces');
        // No pod spec: nothing to hold, wherever it is.
        const plainCr = await raw('POST', runners(plain.name), runner('plain', { size: 3 }));
        assert.equal(plainCr.status, 201, plainCr.text);
        const stored = admin(['get', `runners.${group()}`, '-A', '-o', 'json']).stdout;
        assert.equal(stored.includes('hostNetwork'), false);
        assert.equal(stored.includes('hostPID'), false);
        assert.equal(stored.includes('privileged'), false);
      });

      it('network policy of network plugins cannot be written, whether or not the plugin is installed', async () => {
        for (const [g, r] of [
          ['crd.projectcalico.org/v1', 'networkpolicies'],
          ['cilium.io/v2', 'ciliumnetworkpolicies'],
          ['policy.networking.k8s.io/v1alpha1', 'adminnetworkpolicies'],
        ] as const) {
          const c = await raw('POST', `/apis/${g}/namespaces/${ns.name}/${r}`, {
            metadata: { name: 'open' },
            spec: {},
          });
          assert.equal(c.status, 403, c.text);
          assert.match(String(c.json.message), /chaperone-no-network-policy-extensions/);
        }
      });
    });
  });

  describe('nodes and node storage', () => {
    const node = () => `escapes-node-${ns.name}`;
    before(() => {
      ok(
        admin(
          ['create', '-f', '-'],
          JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: node() } }),
        ),
      );
    });
    after(() => {
      admin(['delete', 'node', node(), '--wait=false', '--ignore-not-found']);
    });

    it('nodes cannot be tainted, relabelled, deleted or have their status written', async () => {
      refused(agent(['taint', 'node', node(), 'evict=now:NoExecute']), 'chaperone-no-node-writes');
      refused(agent(['label', 'node', node(), 'x=y']), 'chaperone-no-node-writes');
      refused(agent(['delete', 'node', node()]), 'chaperone-no-node-writes');
      const st = await raw(
        'PATCH',
        `/api/v1/nodes/${node()}/status`,
        { status: { daemonEndpoints: { kubeletEndpoint: { Port: 1 } } } },
        'application/merge-patch+json',
      );
      assert.equal(st.status, 403, st.text);
      assert.match(String(st.json.message), /chaperone-no-node-writes/);
      const n = admin(['get', 'node', node(), '-o', 'json']).stdout;
      assert.equal(n.includes('evict'), false);
      ok(agent(['get', 'nodes']));
    });

    it('PersistentVolumes and StorageClasses cannot be written; a claim cannot name its volume', () => {
      refused(
        agent(
          ['create', '-f', '-'],
          JSON.stringify({
            apiVersion: 'v1',
            kind: 'PersistentVolume',
            metadata: { name: `root-${ns.name}` },
            spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], hostPath: { path: '/' } },
          }),
        ),
        'chaperone-no-node-storage',
      );
      refused(
        agent(
          ['create', '-f', '-'],
          JSON.stringify({
            apiVersion: 'storage.k8s.io/v1',
            kind: 'StorageClass',
            metadata: { name: `nfs-${ns.name}` },
            provisioner: 'example.com/nfs',
          }),
        ),
        'chaperone-no-node-storage',
      );
      const claim = (name: string, extra: Record<string, unknown>) =>
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: { name },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, ...extra },
        });
      refused(
        agent(['create', '-f', '-'], claim('bound', { volumeName: 'someone-elses' })),
        'chaperone-no-volume-binding',
      );
      ok(agent(['create', '-f', '-'], claim('ordinary', {})));
      ok(agent(['label', 'pvc', 'ordinary', 'team=x']));
    });
  });

  describe('reading a write one way', () => {
    /**
     * A validating webhook that plays another writer: `during` runs (as the admin) when the API
     * server asks it about a dry run of the named Deployment, before the dry run is let through.
     * Waits until the webhook is called, runs `fn`, removes it.
     */
    const withRaceWebhook = async (
      name: string,
      during: (operation: string) => void,
      fn: () => Promise<void>,
    ): Promise<void> => {
      const ca = createCA({ commonName: 'race webhook CA' });
      const leaf = issueCertificate({ ca, commonName: 'race-webhook', ipAddresses: ['127.0.0.1'] });
      const label = `race-${ns.name}`;
      let probes = 0;
      const review = (req: IncomingMessage, res: ServerResponse) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const r = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
            request: { uid: string; dryRun?: boolean; name?: string; operation: string };
          };
          if (r.request.dryRun && r.request.name === 'probe') probes++;
          if (r.request.dryRun && r.request.name === name) during(r.request.operation);
          const body = JSON.stringify({
            apiVersion: 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            response: { uid: r.request.uid, allowed: true },
          });
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(body);
        });
      };
      const server = createServer({ cert: leaf.cert, key: leaf.key }, review);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const hook = `race-${name}-${ns.name}`;
      try {
        ok(
          admin(
            ['create', '-f', '-'],
            JSON.stringify({
              apiVersion: 'admissionregistration.k8s.io/v1',
              kind: 'ValidatingWebhookConfiguration',
              metadata: { name: hook },
              webhooks: [
                {
                  name: 'race.chaperone.dev',
                  clientConfig: {
                    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/validate`,
                    caBundle: Buffer.from(ca.cert).toString('base64'),
                  },
                  rules: [
                    {
                      operations: ['CREATE', 'UPDATE'],
                      apiGroups: ['apps'],
                      apiVersions: ['v1'],
                      resources: ['deployments'],
                    },
                  ],
                  objectSelector: { matchLabels: { race: label } },
                  sideEffects: 'NoneOnDryRun',
                  admissionReviewVersions: ['v1'],
                  failurePolicy: 'Ignore',
                  timeoutSeconds: 10,
                },
              ],
            }),
          ),
        );
        // The webhook configuration takes effect within a moment: wait until a dry run reaches it.
        await waitFor(
          async () => {
            const probe = await adminRaw(
              'POST',
              `/apis/apps/v1/namespaces/${ns.name}/deployments?dryRun=All`,
              JSON.stringify(deployment('probe', { race: label }, {})),
            );
            return probe.status === 201 && probes > 0;
          },
          { what: 'the race webhook to be called', timeoutMs: 20_000 },
        );
        await fn();
      } finally {
        admin(['delete', 'validatingwebhookconfiguration', hook, '--ignore-not-found']);
        server.close();
      }
    };
    const deployment = (name: string, labels: Record<string, string>, podSpec: Record<string, unknown>) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, labels },
      spec: {
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { containers: [{ name: 'a', image: 'nginx' }], ...podSpec },
        },
      },
    });

    it('a server-side apply that creates never lands as an unchecked update of an object that appeared meanwhile', async () => {
      // During the sidecar's dry run of the agent's apply, the other writer creates the object.
      // The checked creation is held to a resourceVersion no stored object has, so the API server
      // refuses it (409); the guard then reads the object that appeared, checks the apply again as
      // an update of it (a second dry run), and only that lands.
      const label = `race-${ns.name}`;
      let raced = false;
      let racedDryRuns = 0;
      let raceFailure = '';
      await withRaceWebhook(
        'raced',
        () => {
          racedDryRuns++;
          if (raced) return;
          raced = true;
          const made = admin(
            ['create', '-n', ns.name, '-f', '-'],
            JSON.stringify(deployment('raced', { writer: 'other' }, {})),
          );
          if (made.code !== 0) raceFailure = made.stderr;
        },
        async () => {
          const r = await raw(
            'PATCH',
            `/apis/apps/v1/namespaces/${ns.name}/deployments/raced?fieldManager=agent`,
            // Fields of its own, and the other writer's values where both write: no apply conflict.
            JSON.stringify(deployment('raced', { race: label, applied: 'agent' }, {})),
            'application/apply-patch+yaml',
          );
          assert.ok(raced, 'the webhook saw the dry run');
          assert.equal(raceFailure, '', 'the webhook created the object during the dry run');
          assert.equal(r.status, 200, r.text);
          // Two at least: the object's controller may write its status meanwhile, and each conflict is checked again.
          assert.ok(racedDryRuns >= 2, 'the apply was checked again against the object that appeared');
          const stored = admin([
            'get',
            'deployment',
            'raced',
            '-n',
            ns.name,
            '-o',
            'jsonpath={.metadata.labels}',
          ]);
          assert.match(stored.stdout, /"writer":"other"/);
          assert.match(stored.stdout, /"applied":"agent"/);
        },
      );
    });

    it('a server-side apply checked as an update never creates the object when it is deleted meanwhile', async () => {
      // An admin's Deployment whose template the agent could not create (host network). An apply that
      // leaves the template as it is passes as an update; during its dry run the object is deleted.
      // An apply creates what is gone, whatever resourceVersion it holds, so the guard holds it to the
      // object's uid too: the API server refuses the write (409), the guard reads again, finds nothing,
      // and checks the apply as the create it would now be, which the host-network rule refuses.
      const label = `race-${ns.name}`;
      const doomed = deployment('doomed', { race: label }, { hostNetwork: true });
      ok(admin(['create', '-n', ns.name, '-f', '-'], JSON.stringify(doomed)));
      let deleted = '';
      await withRaceWebhook(
        'doomed',
        (operation) => {
          if (operation !== 'UPDATE' || deleted) return;
          const gone = admin(['delete', 'deployment', 'doomed', '-n', ns.name, '--wait=false']);
          deleted = gone.code === 0 ? 'yes' : gone.stderr;
        },
        async () => {
          const r = await raw(
            'PATCH',
            `/apis/apps/v1/namespaces/${ns.name}/deployments/doomed?fieldManager=agent`,
            JSON.stringify(deployment('doomed', { race: label, applied: 'agent' }, { hostNetwork: true })),
            'application/apply-patch+yaml',
          );
          assert.equal(deleted, 'yes', 'the webhook deleted the object during the dry run');
          assert.equal(r.status, 403, r.text);
          assert.match(r.text, /chaperone-no-host-namespaces/);
          const stored = admin([
            'get',
            'deployment',
            'doomed',
            '-n',
            ns.name,
            '--ignore-not-found',
            '-o',
            'name',
          ]);
          assert.equal(stored.stdout.trim(), '', 'nothing was created');
        },
      );
    });

    it('a JSON patch that sets a stale resourceVersion gets the 409 the API server gives it', async () => {
      ok(
        admin(['create', '-n', ns.name, '-f', '-'], JSON.stringify(deployment('versioned', { v: '1' }, {}))),
      );
      const path = `/apis/apps/v1/namespaces/${ns.name}/deployments/versioned`;
      const ops = (rv: string) =>
        JSON.stringify([
          { op: 'replace', path: '/metadata/resourceVersion', value: rv },
          { op: 'add', path: '/metadata/labels/patched', value: rv },
        ]);
      // The API server holds a JSON patch to the resourceVersion it sets (the guard sends such a patch as it is).
      const direct = await adminRaw('PATCH', path, ops('1'), 'application/json-patch+json');
      assert.equal(direct.status, 409, direct.text);
      const stale = await raw('PATCH', path, ops('1'), 'application/json-patch+json');
      assert.equal(stale.status, 409, stale.text);
      // At the current version it lands (the deployment controller may move the version on meanwhile).
      await waitFor(
        async () => {
          const rv = admin([
            'get',
            'deployment',
            'versioned',
            '-n',
            ns.name,
            '-o',
            'jsonpath={.metadata.resourceVersion}',
          ]);
          return (
            (await raw('PATCH', path, ops(rv.stdout.trim()), 'application/json-patch+json')).status === 200
          );
        },
        { what: 'a patch at the current resourceVersion to land', timeoutMs: 10_000 },
      );
    });

    it('a JSON patch that removes or moves out the resourceVersion is held to the version the guard read, as the API server holds the form it sends', async () => {
      ok(
        admin(
          ['create', '-n', ns.name, '-f', '-'],
          JSON.stringify(deployment('unversioned', { v: '1' }, {})),
        ),
      );
      const path = `/apis/apps/v1/namespaces/${ns.name}/deployments/unversioned`;
      const forms = {
        removed: (label: string) => [
          { op: 'replace', path: '/metadata/resourceVersion', value: '1' },
          { op: 'remove', path: '/metadata/resourceVersion' },
          { op: 'add', path: `/metadata/labels/${label}`, value: 'yes' },
        ],
        moved: (label: string) => [
          { op: 'replace', path: '/metadata/resourceVersion', value: '1' },
          { op: 'move', from: '/metadata/resourceVersion', path: `/metadata/labels/${label}` },
        ],
      };
      for (const [what, ops] of Object.entries(forms)) {
        // To the API server the removal is the last word: the stale "1" before it holds the patch to nothing.
        const direct = await adminRaw(
          'PATCH',
          path,
          JSON.stringify(ops(`${what}-direct`)),
          'application/json-patch+json',
        );
        assert.equal(direct.status, 200, direct.text);
        // What the guard sends on: its precondition after the removal, which the API server holds the patch to.
        const held = [
          ...ops(`${what}-held`),
          { op: 'replace', path: '/metadata/resourceVersion', value: '1' },
        ];
        const stale = await adminRaw('PATCH', path, JSON.stringify(held), 'application/json-patch+json');
        assert.equal(stale.status, 409, stale.text);
        // Through the guard it lands, held to the version the guard read.
        const viaGuard = await raw(
          'PATCH',
          path,
          JSON.stringify(ops(`${what}-guarded`)),
          'application/json-patch+json',
        );
        assert.equal(viaGuard.status, 200, viaGuard.text);
      }
      const stored = admin(['get', 'deployment', 'unversioned', '-n', ns.name, '-o', 'json']);
      const labels = (JSON.parse(stored.stdout) as { metadata: { labels: Record<string, string> } }).metadata
        .labels;
      assert.deepEqual(Object.keys(labels).sort(), [
        'moved-direct',
        'moved-guarded',
        'removed-direct',
        'removed-guarded',
        'v',
      ]);
    });

    it('a resourceVersion copied into place is refused; one written in another case is not a precondition, to the API server either', async () => {
      ok(admin(['create', '-n', ns.name, '-f', '-'], JSON.stringify(deployment('cased', { v: '1' }, {}))));
      const path = `/apis/apps/v1/namespaces/${ns.name}/deployments/cased`;
      const copied = JSON.stringify([
        { op: 'copy', from: '/metadata/labels/v', path: '/metadata/resourceVersion' },
        { op: 'add', path: '/metadata/labels/copied', value: 'yes' },
      ]);
      // The API server holds the patch to the copied value ("1", long gone): a precondition the guard
      // would not see, so it refuses the patch rather than hold it to the version it read.
      const direct = await adminRaw('PATCH', path, copied, 'application/json-patch+json');
      assert.equal(direct.status, 409, direct.text);
      const viaGuard = await raw('PATCH', path, copied, 'application/json-patch+json');
      assert.equal(viaGuard.status, 400, viaGuard.text);
      assert.match(viaGuard.text, /copies or moves a value to \/metadata\/resourceVersion/);
      // Field names are read case-sensitively: "resourceversion" holds a patch to nothing, directly or
      // through the guard (which still holds it to the version it read), and is not stored.
      const lower = (label: string) =>
        JSON.stringify([
          { op: 'add', path: '/metadata/resourceversion', value: '1' },
          { op: 'add', path: `/metadata/labels/${label}`, value: 'yes' },
        ]);
      const lowerDirect = await adminRaw('PATCH', path, lower('direct'), 'application/json-patch+json');
      assert.equal(lowerDirect.status, 200, lowerDirect.text);
      const lowerGuard = await raw('PATCH', path, lower('guarded'), 'application/json-patch+json');
      assert.equal(lowerGuard.status, 200, lowerGuard.text);
      const merged = await raw(
        'PATCH',
        path,
        JSON.stringify({ metadata: { resourceversion: '1', labels: { merged: 'yes' } } }),
        'application/merge-patch+json',
      );
      assert.equal(merged.status, 200, merged.text);
      const stored = admin(['get', 'deployment', 'cased', '-n', ns.name, '-o', 'json']);
      const meta = (JSON.parse(stored.stdout) as { metadata: Record<string, unknown> }).metadata;
      assert.equal(meta.resourceversion, undefined);
      assert.deepEqual(meta.labels, { v: '1', direct: 'yes', guarded: 'yes', merged: 'yes' });
    });

    it('an apply body with a character YAML reads as a line break is refused; the API server reads it otherwise', async () => {
      // NEL inside a JSON string: JSON keeps it, the API server's YAML reader folds it to a space.
      const body = (name: string) =>
        `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"${name}"},"data":{"k":"a\u0085b"}}`;
      const direct = await adminRaw(
        'PATCH',
        `/api/v1/namespaces/${ns.name}/configmaps/yaml-breaks?fieldManager=admin`,
        body('yaml-breaks'),
        'application/apply-patch+yaml',
      );
      assert.equal(direct.status, 201, direct.text);
      const stored = JSON.parse(direct.text) as { data: { k: string } };
      assert.equal((JSON.parse(body('x')) as typeof stored).data.k, 'a\u0085b');
      assert.equal(stored.data.k, 'a b', 'the API server read the JSON string differently');
      for (const ch of ['\u0085', '\u2028', '\u2029']) {
        const r = await raw(
          'PATCH',
          `/apis/apps/v1/namespaces/${ns.name}/deployments/web?fieldManager=agent`,
          `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{"k":"a${ch}b"}}}`,
          'application/apply-patch+yaml',
        );
        assert.equal(r.status, 400, r.text);
        assert.match(String(r.json.message), /YAML line breaks/);
      }
    });

    it("the guard's own calls to the API server carry ids derived from the request's Audit-ID", {
      skip: kube.auditLogPath
        ? false
        : "needs the local control plane's audit log (an existing cluster's is not ours to read)",
    }, async () => {
      ok(agent(['label', 'deployment', 'web', 'audited=yes']));
      const uri = `/apis/apps/v1/namespaces/${ns.name}/deployments/web?`;
      const ours = await waitFor(
        async () =>
          readSpoolDir(sc.spoolDir)
            .filter(
              (e) => e.verb === 'patch' && e.requestURI.startsWith(uri) && e.responseStatus?.code === 200,
            )
            .at(-1),
        { what: "the sidecar's event for the label patch", timeoutMs: 10_000 },
      );
      const log = await waitFor(
        async () => {
          const lines = readFileSync(kube.auditLogPath as string, 'utf8')
            .split('\n')
            .filter((l) => l.includes(ours.auditID))
            .map(
              (l) => JSON.parse(l) as { auditID: string; stage: string; verb: string; requestURI: string },
            );
          return lines.some((e) => e.auditID === ours.auditID && e.stage === 'ResponseComplete')
            ? lines
            : undefined;
        },
        { what: "the API server's events for the request", timeoutMs: 15_000 },
      );
      const mine = log.filter((e) => e.auditID === ours.auditID && e.stage === 'RequestReceived');
      assert.equal(mine.length, 1, JSON.stringify(mine));
      assert.equal(mine[0]?.verb, 'patch');
      assert.equal(mine[0]?.requestURI.includes('dryRun'), false);
      const checks = log.filter((e) => e.auditID !== ours.auditID && e.stage === 'RequestReceived');
      assert.ok(checks.length >= 2, JSON.stringify(checks));
      for (const e of checks) assert.match(e.auditID, new RegExp(`^${ours.auditID}-check-\\d+$`));
      assert.ok(checks.some((e) => e.requestURI.includes('dryRun=All')));
    });
  });

  describe('every refusal is audited', () => {
    it('as a deny with the built-in rule', async () => {
      await new Promise((r) => setTimeout(r, 300));
      const events = readSpoolDir(sc.spoolDir);
      const rules = new Set(
        events
          .filter((e) => e.chaperone?.decision?.action === 'deny')
          .map((e) => e.chaperone?.decision?.rule),
      );
      for (const rule of [
        'chaperone-no-token-request',
        'chaperone-no-token-secrets',
        'chaperone-no-certificate-requests',
        'chaperone-no-opt-out',
        'chaperone-no-host-namespaces',
        'chaperone-no-unguarded-namespace',
        'chaperone-no-unmasked-secrets',
        'chaperone-keep-pod-guarded',
        'chaperone-no-proxy',
        'chaperone-protect-namespaces',
        'chaperone-no-egress-policies',
        'chaperone-no-masked-value-patch',
        'chaperone-no-controller-revisions',
        'chaperone-no-workload-status',
        'chaperone-no-network-policy-extensions',
        'chaperone-no-node-writes',
        'chaperone-no-node-storage',
        'chaperone-no-volume-binding',
        'chaperone-no-reserved-names',
      ]) {
        assert.ok(rules.has(rule), `no deny event for ${rule}: ${[...rules].join(', ')}`);
      }
    });

    it('the canary Secret value appears in no response, log or spool file', () => {
      assert.ok(seen.length > 50);
      for (const text of seen) {
        assert.equal(text.includes(CANARY), false);
        assert.equal(text.includes(CANARY_B64), false);
      }
      const files = [sc.logFile, ...readdirSync(sc.spoolDir).map((f) => join(sc.spoolDir, f))];
      for (const f of files) {
        const text = readFileSync(f, 'utf8');
        assert.equal(text.includes(CANARY), false, `canary in ${f}`);
        assert.equal(text.includes(CANARY_B64), false, `base64 canary in ${f}`);
      }
    });
  });
});
