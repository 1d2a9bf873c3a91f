import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { mutate } from '../inject/mutate.ts';
import type { Container, Pod } from '../k8s-types.ts';
import { TEST_CONFIG } from '../test-support.ts';
import type { AdmissionRequest } from './admission-review.ts';
import { checkExemptions } from './exemptions.ts';
import { type ValidationSettings, validate } from './validation.ts';

const SETTINGS: ValidationSettings = {
  injection: TEST_CONFIG,
  exemptions: { users: ['alice'], groups: ['chaperone-admins'] },
};
const AGENT = { username: 'system:serviceaccount:agents:agent', groups: ['system:serviceaccounts'] };
const RS_CONTROLLER = {
  username: 'system:serviceaccount:kube-system:replicaset-controller',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
};

function plainPod(
  meta: { labels?: Record<string, string>; annotations?: Record<string, string> } = {},
  spec: Partial<Pod['spec']> = {},
): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'agents', ...meta },
    spec: {
      containers: [
        {
          name: 'agent',
          image: 'busybox',
          volumeMounts: [
            {
              name: 'kube-api-access-abcde',
              mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
              readOnly: true,
            },
          ],
        },
      ],
      volumes: [
        {
          name: 'kube-api-access-abcde',
          projected: { sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }] },
        },
      ],
      ...spec,
    },
  };
}

/** The pod as the injector leaves it. */
function injectedPod(): Pod {
  const r = mutate(plainPod(), TEST_CONFIG, { namespace: 'agents' });
  assert.deepEqual(r.skipReasons, []);
  return structuredClone(r.pod);
}

function sidecarOf(pod: Pod): Container {
  const c = pod.spec.containers.find((x) => x.name === 'chaperone-sidecar');
  assert.ok(c);
  return c;
}

function podRequest(
  operation: string,
  object: unknown,
  userInfo: AdmissionRequest['userInfo'] = AGENT,
  extra: Partial<AdmissionRequest> = {},
): AdmissionRequest {
  return {
    uid: 'u-1',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    namespace: 'agents',
    operation,
    object,
    userInfo,
    ...extra,
  };
}

describe('validate: pod CREATE (the pod after every mutation)', () => {
  const cases: {
    name: string;
    pod: () => Pod;
    user?: AdmissionRequest['userInfo'];
    result: string;
    reason: string;
    message?: RegExp;
  }[] = [
    { name: 'injected and intact', pod: injectedPod, result: 'admitted', reason: 'injected' },
    {
      name: 'injected, the sidecar’s resources filled in by LimitRanger',
      pod: () => {
        const p = injectedPod();
        const s = sidecarOf(p);
        s.resources = { ...(s.resources as object), limits: { cpu: '1', memory: '256Mi' } };
        return p;
      },
      result: 'admitted',
      reason: 'injected',
    },
    {
      name: 'opt-out label (the mutating webhook never saw it)',
      pod: () => plainPod({ labels: { 'chaperone.dev/inject': 'false' } }),
      result: 'denied',
      reason: 'opted_out_label',
      message:
        /pod p would run without the Chaperone sidecar in namespace agents.*opt-out label chaperone\.dev\/inject=false.*namespace that is not opted in.*--exempt-users.*requester: system:serviceaccount:agents:agent/,
    },
    {
      name: 'opt-out annotation',
      pod: () => plainPod({ annotations: { 'chaperone.dev/inject': 'false' } }),
      result: 'denied',
      reason: 'opted_out',
      message: /opt-out annotation chaperone\.dev\/inject: "false".*Remove the annotation/,
    },
    {
      name: 'hostNetwork',
      pod: () => plainPod({}, { hostNetwork: true }),
      result: 'denied',
      reason: 'host_network',
      message: /hostNetwork: true/,
    },
    {
      name: 'a Deployment’s opt-out pod, created by the replicaset controller',
      pod: () => plainPod({ annotations: { 'chaperone.dev/inject': 'false' } }),
      user: RS_CONTROLLER,
      result: 'denied',
      reason: 'opted_out',
      message: /requester: system:serviceaccount:kube-system:replicaset-controller/,
    },
    {
      name: 'never injected (no marks)',
      pod: () => plainPod(),
      result: 'denied',
      reason: 'not_injected',
    },
    {
      name: 'marked injected but the sidecar removed',
      pod: () => {
        const p = injectedPod();
        p.spec.containers = p.spec.containers.filter((c) => c.name !== 'chaperone-sidecar');
        return p;
      },
      result: 'denied',
      reason: 'no_sidecar',
    },
    {
      name: 'an agent container given a token after injection',
      pod: () => {
        const p = injectedPod();
        p.spec.volumes?.push({
          name: 'stolen',
          projected: { sources: [{ serviceAccountToken: { path: 'token' } }] },
        });
        p.spec.containers[1]?.volumeMounts?.push({ name: 'stolen', mountPath: '/tmp/t' });
        return p;
      },
      result: 'denied',
      reason: 'custody',
      message: /mounts projected service-account token volume stolen/,
    },
    {
      name: 'a forged sidecar (its own image and command, the real marks)',
      pod: () => {
        const p = injectedPod();
        const s = sidecarOf(p);
        s.image = 'busybox';
        s.command = ['sh', '-c', 'cat /var/run/chaperone/serviceaccount/token'];
        return p;
      },
      result: 'denied',
      reason: 'not_as_injected',
      message: /differs at \/spec\/containers\/0\/(image|command)/,
    },
    {
      name: 'a sidecar with an exec probe added after injection',
      pod: () => {
        const p = injectedPod();
        sidecarOf(p).livenessProbe = { exec: { command: ['sh', '-c', 'curl evil'] } };
        return p;
      },
      result: 'denied',
      reason: 'not_as_injected',
    },
    {
      name: 'the redirect env dropped from an agent container',
      pod: () => {
        const p = injectedPod();
        const agent = p.spec.containers[1] as Container;
        agent.env = agent.env?.filter((e) => e.name !== 'KUBERNETES_SERVICE_HOST');
        return p;
      },
      result: 'denied',
      reason: 'not_as_injected',
    },
    {
      name: 'shareProcessNamespace on an injected pod',
      pod: () => {
        const p = injectedPod();
        p.spec.shareProcessNamespace = true;
        return p;
      },
      result: 'denied',
      reason: 'invalid',
      message: /shareProcessNamespace/,
    },
    {
      name: 'opt-out by an exempt user',
      pod: () => plainPod({ labels: { 'chaperone.dev/inject': 'false' } }),
      user: { username: 'alice', groups: ['system:authenticated'] },
      result: 'exempt',
      reason: 'opted_out_label',
    },
    {
      name: 'hostNetwork by a member of an exempt group',
      pod: () => plainPod({}, { hostNetwork: true }),
      user: { username: 'bob', groups: ['system:authenticated', 'chaperone-admins'] },
      result: 'exempt',
      reason: 'host_network',
    },
    {
      name: 'a user named like an exempt group is not exempt',
      pod: () => plainPod({ annotations: { 'chaperone.dev/inject': 'false' } }),
      user: { username: 'chaperone-admins', groups: ['alice'] },
      result: 'denied',
      reason: 'opted_out',
    },
    {
      name: 'no userInfo at all',
      pod: () => plainPod({ annotations: { 'chaperone.dev/inject': 'false' } }),
      user: undefined,
      result: 'denied',
      reason: 'opted_out',
      message: /requester: an unidentified requester/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const req = podRequest('CREATE', c.pod(), 'user' in c ? c.user : AGENT);
      if ('user' in c && c.user === undefined) delete (req as { userInfo?: unknown }).userInfo;
      const out = validate(req, SETTINGS);
      assert.equal(out.result, c.result, out.response.status?.message);
      assert.equal(out.reason, c.reason);
      assert.equal(out.response.uid, 'u-1');
      assert.equal(out.response.allowed, c.result !== 'denied');
      if (c.result === 'denied') {
        assert.equal(out.response.status?.code, 403);
        assert.equal(out.response.status?.reason, 'Forbidden');
        assert.match(out.response.status?.message ?? '', /^chaperone: /);
      }
      if (c.result === 'exempt') {
        assert.match(
          out.response.warnings?.[0] ?? '',
          /^chaperone: admitted because (user alice|group chaperone-admins) is exempt/,
        );
      }
      if (c.message) assert.match(out.response.status?.message ?? '', c.message);
    });
  }
});

describe('validate: pod UPDATE of an injected pod', () => {
  const update = (change: (p: Pod) => void, user: AdmissionRequest['userInfo'] = AGENT) => {
    const old = injectedPod();
    const next = structuredClone(old);
    change(next);
    return validate(podRequest('UPDATE', next, user, { oldObject: old, name: 'p' }), SETTINGS);
  };
  it('refuses removing the injected label (kubectl label pod p chaperone.dev/injected-)', () => {
    const out = update((p) => {
      delete p.metadata?.labels?.['chaperone.dev/injected'];
    });
    assert.equal(out.result, 'denied');
    assert.equal(out.reason, 'marks_changed');
    assert.match(
      out.response.status?.message ?? '',
      /pod p in namespace agents is guarded by Chaperone, and this update would remove its label chaperone\.dev\/injected/,
    );
  });
  it('refuses the same through the status subresource (which can change labels)', () => {
    const old = injectedPod();
    const next = structuredClone(old);
    delete next.metadata?.labels?.['chaperone.dev/injected'];
    const out = validate(
      podRequest('UPDATE', next, AGENT, { oldObject: old, name: 'p', subResource: 'status' }),
      SETTINGS,
    );
    assert.equal(out.result, 'denied');
    assert.equal(out.reason, 'marks_changed');
    const kubelet = structuredClone(old);
    kubelet.status = { phase: 'Running' };
    const status = validate(
      podRequest(
        'UPDATE',
        kubelet,
        { username: 'system:node:n1', groups: ['system:nodes'] },
        {
          oldObject: old,
          subResource: 'status',
        },
      ),
      SETTINGS,
    );
    assert.equal(status.result, 'admitted', 'a kubelet status update passes');
  });
  it('refuses changing the status annotation, or adding a chaperone.dev/ label', () => {
    assert.equal(
      update((p) => {
        (p.metadata?.annotations as Record<string, string>)['chaperone.dev/status'] = '{}';
      }).reason,
      'marks_changed',
    );
    const out = update((p) => {
      (p.metadata?.labels as Record<string, string>)['chaperone.dev/inject'] = 'false';
    });
    assert.equal(out.result, 'denied');
    assert.match(out.response.status?.message ?? '', /add the label chaperone\.dev\/inject/);
  });
  it('refuses changing the sidecar (kubectl set image)', () => {
    const out = update((p) => {
      sidecarOf(p).image = 'evil:latest';
    });
    assert.equal(out.result, 'denied');
    assert.equal(out.reason, 'sidecar_changed');
    assert.match(out.response.status?.message ?? '', /change its chaperone-sidecar container \(at \/image\)/);
  });
  it('refuses removing the sidecar', () => {
    const out = update((p) => {
      p.spec.containers = p.spec.containers.filter((c) => c.name !== 'chaperone-sidecar');
    });
    assert.equal(out.reason, 'sidecar_changed');
    assert.equal(out.response.allowed, false);
  });
  it('refuses an update that breaks custody', () => {
    const out = update((p) => {
      p.spec.automountServiceAccountToken = true;
    });
    assert.equal(out.reason, 'custody');
    assert.equal(out.response.allowed, false);
  });
  it('admits updates that leave the guard alone', () => {
    for (const change of [
      (p: Pod) => {
        (p.metadata?.labels as Record<string, string>).app = 'web';
      },
      (p: Pod) => {
        (p.spec.containers[1] as Container).image = 'busybox:1.37';
      },
      (p: Pod) => {
        p.metadata = { ...p.metadata, finalizers: ['example.com/x'] };
      },
    ]) {
      const out = update(change);
      assert.equal(out.result, 'admitted', out.response.status?.message);
      assert.equal(out.reason, 'guard_intact');
    }
  });
  it('admits an exempt requester, with a warning', () => {
    const out = update(
      (p) => {
        delete p.metadata?.labels?.['chaperone.dev/injected'];
      },
      { username: 'alice' },
    );
    assert.equal(out.result, 'exempt');
    assert.equal(out.response.allowed, true);
    assert.match(out.response.warnings?.[0] ?? '', /user alice is exempt/);
  });
  it('leaves pods that never were injected alone', () => {
    const old = plainPod({ annotations: { 'chaperone.dev/inject': 'false' } });
    const next = structuredClone(old);
    (next.metadata as { labels?: Record<string, string> }).labels = { app: 'x' };
    const out = validate(podRequest('UPDATE', next, AGENT, { oldObject: old }), SETTINGS);
    assert.equal(out.result, 'admitted');
    assert.equal(out.reason, 'never_injected');
  });
});

describe('validate: ephemeral containers', () => {
  const ephemeral = (old: unknown, next: unknown, user = AGENT) =>
    validate(
      {
        uid: 'u-2',
        kind: { group: '', version: 'v1', kind: 'EphemeralContainers' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        subResource: 'ephemeralcontainers',
        name: 'p',
        namespace: 'agents',
        operation: 'UPDATE',
        object: next,
        oldObject: old,
        userInfo: user,
      },
      SETTINGS,
    );
  it('refuses adding one (1.20 EphemeralContainers object, and the Pod of later versions)', () => {
    const debug = [{ name: 'debug', image: 'busybox', targetContainerName: 'chaperone-sidecar' }];
    let out = ephemeral(
      { metadata: { name: 'p' }, ephemeralContainers: [] },
      { metadata: { name: 'p' }, ephemeralContainers: debug },
    );
    assert.equal(out.result, 'denied');
    assert.equal(out.reason, 'ephemeral_containers');
    const pod = injectedPod();
    const withDebug = structuredClone(pod);
    withDebug.spec.ephemeralContainers = debug;
    out = ephemeral(pod, withDebug);
    assert.equal(out.response.allowed, false);
    assert.match(out.response.status?.message ?? '', /share the sidecar’s processes/);
  });
  it('admits no change, and an exempt requester', () => {
    const pod = injectedPod();
    assert.equal(ephemeral(pod, pod).result, 'admitted');
    const withDebug = structuredClone(pod);
    withDebug.spec.ephemeralContainers = [{ name: 'debug', image: 'busybox' }];
    assert.equal(ephemeral(pod, withDebug, { username: 'alice', groups: [] }).result, 'exempt');
  });
});

describe('validate: namespace UPDATE', () => {
  const ns = (labels: Record<string, string>) => ({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'agents', labels },
  });
  const nsUpdate = (
    old: Record<string, string>,
    next: Record<string, string>,
    user: AdmissionRequest['userInfo'] = AGENT,
    settings: ValidationSettings = SETTINGS,
  ) =>
    validate(
      {
        uid: 'u-3',
        kind: { group: '', version: 'v1', kind: 'Namespace' },
        resource: { group: '', version: 'v1', resource: 'namespaces' },
        name: 'agents',
        operation: 'UPDATE',
        object: ns(next),
        oldObject: ns(old),
        userInfo: user,
      },
      settings,
    );
  const IN = { 'chaperone.dev/inject': 'enabled' };
  it('refuses removing or changing the opt-in label, through the status and finalize subresources too', () => {
    for (const subResource of ['status', 'finalize']) {
      const out = validate(
        {
          uid: 'u-4',
          kind: { group: '', version: 'v1', kind: 'Namespace' },
          resource: { group: '', version: 'v1', resource: 'namespaces' },
          subResource,
          name: 'agents',
          operation: 'UPDATE',
          object: ns({}),
          oldObject: ns(IN),
          userInfo: AGENT,
        },
        SETTINGS,
      );
      assert.equal(out.result, 'denied', subResource);
    }
    let out = nsUpdate(IN, {});
    assert.equal(out.result, 'denied');
    assert.equal(out.reason, 'namespace_opt_out');
    assert.match(
      out.response.status?.message ?? '',
      /namespace agents is opted in to Chaperone, and this update would take it out of Chaperone \(label chaperone\.dev\/inject must be "enabled" \(it is missing\)\)/,
    );
    out = nsUpdate(IN, { 'chaperone.dev/inject': 'disabled' });
    assert.equal(out.result, 'denied');
  });
  it('refuses moving it to a revision this injector does not serve', () => {
    assert.equal(nsUpdate(IN, { ...IN, 'chaperone.dev/revision': 'other' }).result, 'denied');
    const canary = { ...SETTINGS, revision: 'canary' };
    const inCanary = { ...IN, 'chaperone.dev/revision': 'canary' };
    assert.equal(nsUpdate(inCanary, IN, AGENT, canary).result, 'denied');
    assert.equal(nsUpdate(inCanary, { ...inCanary, team: 'x' }, AGENT, canary).result, 'admitted');
  });
  it('admits other changes, opting in, and exempt requesters', () => {
    assert.equal(nsUpdate(IN, { ...IN, team: 'a' }).result, 'admitted');
    assert.equal(nsUpdate({}, IN).result, 'ignored');
    const out = nsUpdate(IN, {}, { username: 'admin', groups: ['chaperone-admins'] });
    assert.equal(out.result, 'exempt');
    assert.equal(out.response.allowed, true);
  });
});

describe('validate: everything else', () => {
  it('ignores other kinds, operations and subresources', () => {
    const cm = {
      uid: 'u',
      kind: { group: '', version: 'v1', kind: 'ConfigMap' },
      resource: { group: '', version: 'v1', resource: 'configmaps' },
      namespace: 'agents',
      operation: 'CREATE',
      object: { metadata: { labels: { 'chaperone.dev/inject': 'false' } } },
      userInfo: AGENT,
    };
    const deployment = {
      ...cm,
      kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
      resource: { group: 'apps', version: 'v1', resource: 'deployments' },
    };
    for (const req of [
      cm,
      deployment,
      podRequest('DELETE', undefined, AGENT, { oldObject: injectedPod() }),
      podRequest('CREATE', { kind: 'Binding' }, AGENT, { subResource: 'binding' }),
    ]) {
      const out = validate(req as AdmissionRequest, SETTINGS);
      assert.equal(out.result, 'ignored');
      assert.deepEqual(out.response, { uid: req.uid, allowed: true });
    }
  });
  it('ignores excluded namespaces', () => {
    const out = validate(
      podRequest('CREATE', plainPod({ labels: { 'chaperone.dev/inject': 'false' } }), AGENT, {
        namespace: 'kube-system',
      }),
      SETTINGS,
    );
    assert.equal(out.result, 'ignored');
  });
  it('denies malformed requests with a message, even for exempt requesters', () => {
    const alice = { username: 'alice' };
    for (const req of [
      podRequest('CREATE', { metadata: { name: 'x' } }, alice),
      podRequest('CREATE', { spec: { containers: 'agent' } }, alice),
      podRequest('CREATE', plainPod(), alice, { namespace: undefined }),
      podRequest('UPDATE', injectedPod(), alice),
      { ...podRequest('CREATE', plainPod(), alice), kind: undefined },
      {
        ...podRequest('UPDATE', {}, alice),
        kind: { group: '', version: 'v1', kind: 'Namespace' },
        resource: { group: '', version: 'v1', resource: 'namespaces' },
      },
    ]) {
      const out = validate(req as unknown as AdmissionRequest, SETTINGS);
      assert.equal(out.response.allowed, false, JSON.stringify(req).slice(0, 120));
      assert.equal(out.reason, 'malformed');
      assert.equal(out.response.status?.code, 400);
      assert.match(out.response.status?.message ?? '', /^chaperone: .*cannot be checked, so it is refused/);
    }
  });
  it('never admits a random pod, and never throws on a random request', () => {
    fc.assert(
      fc.property(fc.anything(), (object) => {
        const out = validate(podRequest('CREATE', object), SETTINGS);
        assert.equal(out.response.allowed, false);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.anything(), fc.anything(), fc.constantFrom('CREATE', 'UPDATE'), (a, b, op) => {
        const out = validate(podRequest(op, a, AGENT, { oldObject: b }), SETTINGS);
        assert.equal(typeof out.response.allowed, 'boolean');
        if (op === 'CREATE') assert.equal(out.response.allowed, false);
      }),
      { numRuns: 500 },
    );
  });
});

describe('exemptions', () => {
  it('refuses identities that stand for everyone or for template controllers', () => {
    for (const [users, groups, message] of [
      [
        [],
        ['system:authenticated'],
        /"system:authenticated" cannot be exempted: it stands for every authenticated client/,
      ],
      [[], ['system:serviceaccounts'], /every service account, so every agent/],
      [[], ['system:serviceaccounts:kube-system'], /--exempt-groups/],
      [['system:serviceaccount:kube-system:replicaset-controller'], [], /user-written templates/],
      [['system:kube-controller-manager'], [], /--use-service-account-credentials/],
      [['admin*'], [], /exact names only/],
      [['alice', 'alice'], [], /listed twice/],
    ] as const) {
      assert.throws(() => checkExemptions({ users, groups }), message);
    }
    checkExemptions({ users: ['alice', 'oidc:bob@example.com'], groups: ['system:masters', 'ops'] });
  });
});
