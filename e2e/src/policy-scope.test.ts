// Restrictive rules reach as far as the request does, through a real
// `chaperone sidecar` in front of the real kube-apiserver: a deny scoped to a
// namespace also stops the cluster-wide list and watches that would serve that
// namespace's objects, a deny on a resource also stops its subresources, a
// deny on a non-resource URL also stops the paths below it. Each case first
// shows, as the admin on the API server itself, that the request would reach
// what the rule protects; the allowed counterparts still work through the
// guard. The agent is bound to cluster-admin, so only the policy stands in the
// way. The built-in list of cluster-scoped resources is held to the API
// server's discovery.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DependencyError, isBuiltinGroup, isClusterScopedResource } from '@chaperone/shared';
import { Agent, request } from 'undici';
import { createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { type KubectlResult, kubectl } from './kubectl.ts';
import { type SidecarUnderTest, startSidecar } from './sidecar-harness.ts';

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly json: Record<string, unknown>;
}

interface Body {
  readonly type: string;
  readonly text: string;
}

async function send(
  url: string,
  dispatcher: Agent,
  token: string,
  method: string,
  path: string,
  body?: Body,
): Promise<Answer> {
  const r = await request(`${url}${path}`, {
    method: method as 'GET',
    dispatcher,
    headers: {
      authorization: `Bearer ${token}`,
      // The logs handler answers 406 to an Accept without text/plain or */*.
      accept: path.startsWith('/logs') ? '*/*' : 'application/json',
      ...(body ? { 'content-type': body.type } : {}),
    },
    ...(body ? { body: body.text } : {}),
  });
  const text = await r.body.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // a watch stream is several JSON documents: the tests read its text
  }
  return { status: r.statusCode, text, json };
}

describe('policy scope: restrictive rules cover what a request reaches', () => {
  const kube = kubeInfo();
  let home: TestNamespace;
  let locked: TestNamespace;
  let open: TestNamespace;
  let sealed: TestNamespace;
  let kept: TestNamespace;
  let sc: SidecarUnderTest;
  let agentDispatcher: Agent;
  let adminDispatcher: Agent;
  let adminToken: string;
  const agent = (args: string[]): KubectlResult =>
    kubectl(sc.agentKubeconfig, [...args, '--cache-dir', join(sc.dir, 'kube-cache')]);
  const admin = (args: string[]) => kubectl(kube.kubeconfigPath, args);
  const ok = (r: KubectlResult) => assert.equal(r.code, 0, r.stderr);
  /** Through the guard, as the agent. */
  const raw = (method: string, path: string, body?: Body) =>
    send(sc.url, agentDispatcher, sc.agentToken, method, path, body);
  /** The API server itself, as the admin (what the guard stands in front of). */
  const direct = (method: string, path: string, body?: Body) =>
    send(kube.server, adminDispatcher, adminToken, method, path, body);
  const denied = (r: Answer, rule: string, note: RegExp) => {
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.reason, 'Forbidden', r.text);
    assert.ok(String(r.json.message).includes(`chaperone: denied by rule "${rule}"`), r.text);
    assert.match(String(r.json.message), note);
  };

  before(async () => {
    home = await createNamespace('scope', { 'chaperone.dev/inject': 'enabled' });
    locked = await createNamespace('scope-locked');
    open = await createNamespace('scope-open');
    sealed = await createNamespace('scope-sealed');
    kept = await createNamespace('scope-kept');
    sc = await startSidecar({
      namespace: home.name,
      policy: `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata: { name: scope }
spec:
  defaultAction: allow
  rules:
    - name: locked-configmaps
      match: { resources: [configmaps], namespaces: [${locked.name}] }
      action: deny
    - name: keep-configmap
      match: { resources: [configmaps], namespaces: [${kept.name}], names: [keep] }
      action: deny
    - name: no-deployment-patches
      match: { verbs: [patch], apiGroups: [apps], resources: [deployments] }
      action: deny
    - name: no-logs
      match: { nonResourceURLs: [/logs] }
      action: deny
    - name: sealed
      match: { namespaces: [${sealed.name}] }
      action: deny
`,
    });
    agentDispatcher = new Agent({ connect: { ca: sc.agentCa } });
    adminDispatcher = new Agent({ connect: { ca: kube.caCert } });
    const token = /token: (\S+)/.exec(readFileSync(kube.kubeconfigPath, 'utf8'))?.[1];
    if (!token) throw new DependencyError('the admin kubeconfig has no token');
    adminToken = token;
    ok(admin(['create', 'configmap', 'cm1', '-n', locked.name, '--from-literal=k=locked-value']));
    ok(admin(['create', 'configmap', 'cm1', '-n', open.name, '--from-literal=k=open-value']));
    ok(admin(['create', 'deployment', 'web', '-n', open.name, '--image=nginx:1.27']));
    ok(admin(['create', 'configmap', 'keep', '-n', kept.name, '--from-literal=k=kept-value']));
    ok(admin(['create', 'configmap', 'scratch', '-n', kept.name, '--from-literal=k=scratch']));
  });
  after(async () => {
    await agentDispatcher?.close();
    await adminDispatcher?.close();
    await sc?.stop();
    for (const ns of [home, locked, open, sealed, kept]) await ns?.delete();
  });

  // timeoutSeconds ends a watch the API server serves, so a test whose request got through fails
  // on its status instead of hanging.
  const spanning = () => [
    `/api/v1/configmaps?fieldSelector=metadata.namespace%3D${locked.name}`,
    `/api/v1/watch/configmaps?fieldSelector=metadata.namespace%3D${locked.name}&timeoutSeconds=1`,
    '/api/v1/configmaps?watch=1&fieldSelector=metadata.name%3Dcm1&timeoutSeconds=1',
  ];

  it("the API server serves the locked namespace's ConfigMap to each cluster-wide list and watch", async () => {
    for (const path of spanning()) {
      const r = await direct('GET', path);
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      assert.ok(r.text.includes(`"namespace":"${locked.name}"`), `${path}: ${r.text}`);
      assert.ok(r.text.includes('locked-value'), `${path}: ${r.text}`);
    }
  });

  it('a deny scoped to a namespace denies those cluster-wide requests through the guard', async () => {
    const namedNoNamespace = /names no namespace, so it reaches namespace "scope-locked-[0-9a-f]+" too/;
    const inLocked = await raw('GET', `/api/v1/namespaces/${locked.name}/configmaps/cm1`);
    assert.equal(inLocked.status, 403, inLocked.text);
    for (const path of spanning()) {
      const r = await raw('GET', path);
      denied(r, 'locked-configmaps', namedNoNamespace);
      assert.equal(r.text.includes('locked-value'), false);
    }
    const all = agent(['get', 'configmaps', '--all-namespaces']);
    assert.notEqual(all.code, 0, all.stdout);
    assert.match(all.stderr, /chaperone: denied by rule "locked-configmaps"/);
  });

  it('a deny scoped to a name denies the list, watch and deletecollection that would serve or delete it', async () => {
    const collection = `/api/v1/namespaces/${kept.name}/configmaps`;
    const dry = await direct('DELETE', `${collection}?dryRun=All`);
    assert.equal(dry.status, 200, dry.text);
    assert.ok(dry.text.includes('"name":"keep"'), dry.text);
    const namesNoObject = /names no object, so it reaches configmaps "keep" too/;
    // A ConfigMap deletecollection could take the collector's CA bundle with it, so the built-in
    // rule refuses it first in every namespace; the name-scoped rule's reach over deletecollection
    // is held by shared/src/policy/request-span.test.ts.
    denied(await raw('DELETE', collection), 'chaperone-protect-collector-ca', /collector's CA bundle/);
    denied(await raw('GET', collection), 'keep-configmap', namesNoObject);
    denied(await raw('GET', `${collection}?watch=1&timeoutSeconds=1`), 'keep-configmap', namesNoObject);
    denied(
      await raw('GET', `${collection}/keep`),
      'keep-configmap',
      /^chaperone: denied by rule "keep-configmap": denied by keep-configmap$/,
    );
    ok(admin(['get', 'configmap', 'keep', '-n', kept.name]));
    // Naming another object works, by path or by fieldSelector.
    const other = await raw('GET', `${collection}/scratch`);
    assert.equal(other.status, 200, other.text);
    const selected = await raw('GET', `${collection}?fieldSelector=metadata.name%3Dscratch`);
    assert.equal(selected.status, 200, selected.text);
    assert.ok(
      selected.text.includes('"name":"scratch"') && !selected.text.includes('kept-value'),
      selected.text,
    );
  });

  it('the same requests within another namespace still work', async () => {
    const list = await raw('GET', `/api/v1/namespaces/${open.name}/configmaps`);
    assert.equal(list.status, 200, list.text);
    assert.ok(list.text.includes('open-value'));
    const watch = await raw(
      'GET',
      `/api/v1/namespaces/${open.name}/configmaps?watch=1&fieldSelector=metadata.name%3Dcm1&timeoutSeconds=1`,
    );
    assert.equal(watch.status, 200, watch.text);
    assert.ok(watch.text.includes('open-value'), watch.text);
    const get = agent(['get', 'configmap', 'cm1', '-n', open.name, '-o', 'jsonpath={.data.k}']);
    ok(get);
    assert.equal(get.stdout, 'open-value');
  });

  it('a deny scoped to a namespace does not reach cluster-scoped lists; it does reach cluster-wide pod lists', async () => {
    for (const path of [
      '/api/v1/nodes',
      '/apis/rbac.authorization.k8s.io/v1/clusterroles',
      '/apis/storage.k8s.io/v1/storageclasses',
      '/api/v1/persistentvolumes?watch=1&timeoutSeconds=1',
    ]) {
      const r = await raw('GET', path);
      assert.equal(r.status, 200, `${path}: ${r.text}`);
    }
    denied(await raw('GET', '/api/v1/pods'), 'sealed', /names no namespace/);
    // Namespace objects are each in their own namespace: the list serves the sealed one.
    denied(await raw('GET', '/api/v1/namespaces'), 'sealed', /names no namespace/);
    const other = await raw('GET', `/api/v1/namespaces?fieldSelector=metadata.name%3D${open.name}`);
    assert.equal(other.status, 200, other.text);
    const pods = await raw('GET', `/api/v1/namespaces/${open.name}/pods`);
    assert.equal(pods.status, 200, pods.text);
  });

  it('a deny on patching deployments denies patching their scale, which the API server would apply', async () => {
    const scale = `/apis/apps/v1/namespaces/${open.name}/deployments/web/scale`;
    const patch = { type: 'application/merge-patch+json', text: '{"spec":{"replicas":3}}' };
    const dry = await direct('PATCH', `${scale}?dryRun=All`, patch);
    assert.equal(dry.status, 200, dry.text);
    assert.equal((dry.json.spec as { replicas?: number } | undefined)?.replicas, 3);
    denied(
      await raw('PATCH', scale, patch),
      'no-deployment-patches',
      /deployments\/scale is part of deployments/,
    );
    denied(
      await raw('PATCH', `/apis/apps/v1/namespaces/${open.name}/deployments/web`, patch),
      'no-deployment-patches',
      /^chaperone: denied by rule "no-deployment-patches": denied by no-deployment-patches$/,
    );
    const scaled = agent(['scale', 'deployment', 'web', '-n', open.name, '--replicas=3']);
    assert.notEqual(scaled.code, 0, scaled.stdout);
    assert.match(scaled.stderr, /chaperone: denied by rule "no-deployment-patches"/);
    const read = await raw('GET', scale);
    assert.equal(read.status, 200, read.text);
    assert.equal((read.json.spec as { replicas?: number } | undefined)?.replicas, 1);
    const stored = admin(['get', 'deployment', 'web', '-n', open.name, '-o', 'jsonpath={.spec.replicas}']);
    assert.equal(stored.stdout, '1');
  });

  it('a deny on a non-resource URL denies the paths below it, which the API server serves', async () => {
    // The API server redirects /logs to /logs/, which lists its log directory.
    const listing = await direct('GET', '/logs/');
    assert.equal(listing.status, 200, listing.text);
    assert.match(listing.text, /<a href=/);
    denied(await raw('GET', '/logs'), 'no-logs', /^chaperone: denied by rule "no-logs": denied by no-logs$/);
    denied(await raw('GET', '/logs/'), 'no-logs', /\/logs\/ lies under "\/logs"/);
    denied(await raw('GET', '/logs/no-such.log'), 'no-logs', /lies under "\/logs"/);
    const version = await raw('GET', '/version');
    assert.equal(version.status, 200, version.text);
  });

  it("the built-in cluster-scoped resources agree with the API server's discovery", async () => {
    const versions: [string, string][] = [['', '/api/v1']];
    const groups = await direct('GET', '/apis');
    assert.equal(groups.status, 200, groups.text);
    for (const g of groups.json.groups as { name: string; versions: { groupVersion: string }[] }[]) {
      if (!isBuiltinGroup(g.name)) continue; // custom resources of other tests
      for (const v of g.versions) versions.push([g.name, `/apis/${v.groupVersion}`]);
    }
    const problems: string[] = [];
    let clusterScoped = 0;
    for (const [group, path] of versions) {
      const r = await direct('GET', path);
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      for (const res of r.json.resources as { name: string; namespaced: boolean; verbs: string[] }[]) {
        if (res.name.includes('/')) continue;
        const listed = isClusterScopedResource(group, res.name);
        if (res.namespaced && listed) problems.push(`${group}/${res.name} is namespaced on the server`);
        if (!res.namespaced && res.verbs.includes('list')) {
          clusterScoped++;
          if (!listed) problems.push(`${group}/${res.name} is cluster-scoped on the server but not listed`);
        }
      }
    }
    assert.deepEqual(problems, []);
    assert.ok(clusterScoped >= 15, `only ${clusterScoped} cluster-scoped resources were served`);
  });
});
