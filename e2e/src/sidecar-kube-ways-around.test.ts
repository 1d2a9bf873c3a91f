// Ways around the Kubernetes API guard that need no credential at all: an
// agent bound to cluster-admin, behind a real `chaperone sidecar` in front of
// the real kube-apiserver, whose policy allows everything, so only the
// built-in rules stand in the way. The pod's NetworkPolicy lets the pod reach
// the API server (the sidecar must), so whatever the API server serves to a
// caller with no credential at all is served to the agent directly: unguarded,
// unmasked and outside the audit trail.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { kubectl } from './kubectl.ts';
import { createBoundPod } from './kubelet/node.ts';
import { type ExecStage, execStageSkip, startExecStage } from './sidecar-exec-stage.ts';
import { ALLOW_ALL, requestAsAgent, type SidecarUnderTest, startSidecar } from './sidecar-harness.ts';

const CANARY = 'canary-ways-around-7c41d2-do-not-leak';
const CANARY_B64 = Buffer.from(CANARY).toString('base64');

describe('sidecar: ways around the Kubernetes API guard', () => {
  const kube = kubeInfo();
  let ns: TestNamespace;
  let sc: SidecarUnderTest;
  let dispatcher: Agent;
  let direct: Agent;

  /** Through the sidecar, as the agent (its placeholder token). */
  const agent = (method: string, path: string, body?: unknown, type?: string) =>
    requestAsAgent(sc, dispatcher, method, path, body, type);
  /** Straight to the API server from inside the pod, with no credential (the agent holds none). */
  const anonymous = async (path: string) => {
    const r = await request(`${kube.server}${path}`, {
      method: 'GET',
      dispatcher: direct,
      headers: { accept: 'application/json' },
    });
    return { status: r.statusCode, text: await r.body.text() };
  };

  before(async () => {
    ns = await createNamespace('waysaround', { 'chaperone.dev/inject': 'enabled' });
    sc = await startSidecar({ namespace: ns.name, policy: ALLOW_ALL });
    dispatcher = new Agent({ connect: { ca: sc.agentCa } });
    direct = new Agent({ connect: { ca: kube.caCert } });
    const made = kubectl(kube.kubeconfigPath, [
      'create',
      'secret',
      'generic',
      'canary',
      '-n',
      ns.name,
      `--from-literal=password=${CANARY}`,
    ]);
    assert.equal(made.code, 0, made.stderr);
  });
  after(async () => {
    await dispatcher?.close();
    await direct?.close();
    await sc?.stop();
    await ns?.delete();
  });

  it('the API server refuses a caller with no credential (what the bindings below would change)', async () => {
    const r = await anonymous(`/api/v1/namespaces/${ns.name}/secrets/canary`);
    assert.equal(r.status, 403, r.text);
    assert.equal(r.text.includes(CANARY_B64), false);
  });

  /**
   * Creates the binding through the guard, then asks the API server for the
   * canary Secret with no credential; the binding is removed again either way.
   */
  const bindAndRead = async (name: string, subject: Record<string, string>) => {
    const binding = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace: ns.name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' },
      subjects: [subject],
    };
    try {
      const r = await agent(
        'POST',
        `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns.name}/rolebindings`,
        binding,
      );
      const leaked = await anonymous(`/api/v1/namespaces/${ns.name}/secrets/canary`);
      return { r, leaked };
    } finally {
      kubectl(kube.kubeconfigPath, ['delete', 'rolebinding', name, '-n', ns.name, '--ignore-not-found']);
    }
  };

  // Fails without the built-in rule chaperone-no-open-grants (written-object.ts rbacEscapes).
  for (const [kind, name] of [
    ['User', 'system:anonymous'],
    ['Group', 'system:unauthenticated'],
  ] as const) {
    it(`a RoleBinding that grants ${kind} ${name} is refused: it would open a route around the guard`, async () => {
      const { r, leaked } = await bindAndRead(`open-door-${kind.toLowerCase()}`, {
        apiGroup: 'rbac.authorization.k8s.io',
        kind,
        name,
      });
      assert.equal(
        leaked.text.includes(CANARY_B64),
        false,
        `with no credential, straight from the API server, the agent read the Secret unmasked (the guard answered the binding ${r.status})`,
      );
      assert.equal(r.status, 403, r.text);
      assert.match(r.text, /chaperone/);
    });
  }

  /** Asks the API server for the canary Secret with no credential, as the agent's container could: nothing. */
  const noAnonymousRead = async (answered: string) => {
    const leaked = await anonymous(`/api/v1/namespaces/${ns.name}/secrets/canary`);
    assert.equal(
      leaked.text.includes(CANARY_B64),
      false,
      `with no credential, straight from the API server, the agent read the Secret unmasked (the guard answered ${answered})`,
    );
  };

  // Fails without the same rule's refusal of writes to Kubernetes' own system: ClusterRoles.
  it('a ClusterRole that system:unauthenticated is bound to cannot be widened', async () => {
    const role = 'system:public-info-viewer';
    const before = kubectl(kube.kubeconfigPath, ['get', 'clusterrole', role, '-o', 'json']);
    assert.equal(before.code, 0, before.stderr);
    const rules = (JSON.parse(before.stdout) as { rules: unknown[] }).rules;
    try {
      const r = await agent(
        'PATCH',
        `/apis/rbac.authorization.k8s.io/v1/clusterroles/${role}`,
        [
          {
            op: 'add',
            path: '/rules/-',
            value: { apiGroups: [''], resources: ['secrets'], resourceNames: ['canary'], verbs: ['get'] },
          },
        ],
        'application/json-patch+json',
      );
      await noAnonymousRead(`the patch ${r.status}`);
      assert.equal(r.status, 403, r.text);
    } finally {
      kubectl(kube.kubeconfigPath, [
        'patch',
        'clusterrole',
        role,
        '--type=merge',
        '-p',
        JSON.stringify({ rules }),
      ]);
    }
  });
  // Fails if only ClusterRoles named system: were held: a Role an administrator granted to anonymous callers
  // (as kubeadm does in kube-public) is found by the bindings that name it.
  it('a Role an administrator granted to anonymous callers cannot be widened', async () => {
    const admin = (args: string[], input?: string) =>
      kubectl(kube.kubeconfigPath, args, input ? { input } : {});
    const role = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'cluster-info-reader', namespace: ns.name },
      rules: [
        { apiGroups: [''], resources: ['configmaps'], resourceNames: ['cluster-info'], verbs: ['get'] },
      ],
    };
    const binding = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'cluster-info-reader', namespace: ns.name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'cluster-info-reader' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'system:anonymous' }],
    };
    // The second binding names a Role that does not exist yet.
    const early = {
      ...binding,
      metadata: { name: 'cluster-info-reader-2', namespace: ns.name },
      roleRef: { ...binding.roleRef, name: 'cluster-info-reader-2' },
    };
    for (const o of [role, binding, early]) {
      const made = admin(['create', '-f', '-'], JSON.stringify(o));
      assert.equal(made.code, 0, made.stderr);
    }
    try {
      const r = await agent(
        'PATCH',
        `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns.name}/roles/cluster-info-reader`,
        [{ op: 'add', path: '/rules/-', value: { apiGroups: [''], resources: ['secrets'], verbs: ['get'] } }],
        'application/json-patch+json',
      );
      await noAnonymousRead(`the patch ${r.status}`);
      assert.equal(r.status, 403, r.text);
      assert.match(r.text, /chaperone-no-open-grants/);
      assert.match(r.text, /cluster-info-reader to User system:anonymous/);
      // A Role made under a name an administrator already granted to anonymous callers: refused too.
      const made = await agent('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns.name}/roles`, {
        ...role,
        metadata: { name: 'cluster-info-reader-2', namespace: ns.name },
        rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }],
      });
      await noAnonymousRead(`the create ${made.status}`);
      assert.equal(made.status, 403, made.text);
      assert.match(made.text, /cluster-info-reader-2 to User system:anonymous/);
      // A Role granted to no one open can still be changed.
      const own = await agent('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns.name}/roles`, {
        ...role,
        metadata: { name: 'own-role', namespace: ns.name },
      });
      assert.equal(own.status, 201, own.text);
    } finally {
      admin(['delete', 'rolebinding,role', 'cluster-info-reader', '-n', ns.name, '--ignore-not-found']);
      admin(['delete', 'rolebinding,role', 'cluster-info-reader-2', '-n', ns.name, '--ignore-not-found']);
      admin(['delete', 'role', 'own-role', '-n', ns.name, '--ignore-not-found']);
    }
  });
});

// A pod outside the guard (a namespace that did not opt in) holds its service
// account's token in its files, as every pod does by default. The stand-in
// kubelet (a test double: this control plane has no kubelet) stands for the
// node; it runs the command on this machine.
describe('sidecar: exec into pods the guard does not hold', { skip: execStageSkip }, () => {
  let stage: ExecStage;
  let plain: TestNamespace;

  before(async () => {
    stage = await startExecStage({ namespace: 'waysexec', policy: ALLOW_ALL });
    plain = await createNamespace('waysplain');
    for (const [name, token] of [
      ['unguarded', true],
      ['tokenless', false],
    ] as const) {
      await createBoundPod(kubeInfo().kubeconfigPath, {
        namespace: plain.name,
        name,
        node: stage.node.name,
        containers: [{ name: 'app' }],
        token,
      });
    }
    // A token Secret made by hand, under a name of its choosing (as since Kubernetes 1.24), and an ordinary one.
    const secret = (name: string, type: string, annotations: Record<string, string>) =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name, annotations },
        type,
        stringData: { k: 'v' },
      });
    for (const made of [
      kubectl(kubeInfo().kubeconfigPath, ['create', '-n', plain.name, '-f', '-'], {
        input: secret('build-credentials', 'kubernetes.io/service-account-token', {
          'kubernetes.io/service-account.name': 'default',
        }),
      }),
      kubectl(kubeInfo().kubeconfigPath, ['create', '-n', plain.name, '-f', '-'], {
        input: secret('app-config', 'Opaque', {}),
      }),
    ])
      assert.equal(made.code, 0, made.stderr);
    for (const [name, from] of [
      ['env-token', 'build-credentials'],
      ['env-plain', 'app-config'],
    ] as const) {
      await createBoundPod(kubeInfo().kubeconfigPath, {
        namespace: plain.name,
        name,
        node: stage.node.name,
        containers: [
          {
            name: 'app',
            env: [{ name: 'CREDENTIAL', valueFrom: { secretKeyRef: { name: from, key: 'k' } } }],
          },
        ],
      });
    }
  });
  after(async () => {
    await plain?.delete();
    await stage?.stop();
  });

  // Fails without the built-in rule chaperone-no-exec-next-to-tokens (token-holders.ts).
  it('exec into a pod that was never injected is refused: its token would leave through the output', async () => {
    const before = stage.standin.requests.filter((r) => r.kind === 'exec').length;
    // In a real pod: rev /var/run/secrets/kubernetes.io/serviceaccount/token (reversed, no detector sees a JWT).
    const r = await stage.agent([
      'exec',
      '-n',
      plain.name,
      'unguarded',
      '-c',
      'app',
      '--',
      'echo',
      'reached',
    ]);
    const reached = stage.standin.requests.filter((q) => q.kind === 'exec').length - before;
    assert.equal(
      reached,
      0,
      `the exec reached the kubelet of an unguarded pod (kubectl exited ${r.code}: ${r.stdout})`,
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /chaperone-no-exec-next-to-tokens/);
    assert.match(r.stderr, /holds the token Secret "default-token-|holds a projected service-account token/);
  });

  // Fails if the guard took only Secrets named <sa>-token-xxxxx for tokens: it reads each Secret's type.
  it('exec into an unguarded pod with a token Secret of any name in its environment is refused; an ordinary Secret is not', async () => {
    const before = stage.standin.requests.filter((r) => r.kind === 'exec').length;
    const exec = (pod: string) =>
      stage.agent(['exec', '-n', plain.name, pod, '-c', 'app', '--', 'echo', 'reached']);
    const r = await exec('env-token');
    assert.equal(stage.standin.requests.filter((q) => q.kind === 'exec').length - before, 0, r.stdout);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /chaperone-no-exec-next-to-tokens/);
    assert.match(r.stderr, /token Secret "build-credentials" in its environment/);
    const ok = await exec('env-plain');
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /reached/);
  });

  // Fails if the rule refused every pod the guard does not hold: one with no token holds nothing to leak.
  it('exec into an unguarded pod that holds no token goes on', async () => {
    const r = await stage.agent([
      'exec',
      '-n',
      plain.name,
      'tokenless',
      '-c',
      'app',
      '--',
      'echo',
      'reached',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /reached/);
  });
});
