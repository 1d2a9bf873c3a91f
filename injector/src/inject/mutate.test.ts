import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Container, Pod, Volume } from '../k8s-types.ts';
import { TEST_CONFIG, testConfig } from '../test-support.ts';
import { custodyViolations } from './custody-check.ts';
import { InjectionRejected } from './injection-error.ts';
import { applyPatch, diff } from './json-patch.ts';
import { mutate } from './mutate.ts';

const SA = '/var/run/secrets/kubernetes.io/serviceaccount';
const apiAccess = (name: string): Volume => ({
  name,
  projected: {
    defaultMode: 420,
    sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }],
  },
});

function pod(spec: Partial<Pod['spec']> = {}, annotations?: Record<string, string>): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'agents', ...(annotations ? { annotations } : {}) },
    spec: { containers: [{ name: 'agent', image: 'busybox' }], ...spec },
  };
}

function rejected(fn: () => unknown, field: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InjectionRejected, String(err));
    if (typeof field === 'string') assert.equal(err.field, field);
    else assert.match(err.message, field);
    return true;
  });
}

// Pods built from a small vocabulary of the shapes the API server hands the webhook.
const containerArb = (names: string[]) =>
  fc.record(
    {
      name: fc.constantFrom(...names),
      env: fc.array(
        fc.record(
          {
            name: fc.constantFrom('A', 'KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT', 'PGHOST'),
            value: fc.constantFrom('1', '10.0.0.1'),
          },
          { noNullPrototype: true },
        ),
        { maxLength: 4 },
      ),
      mountToken: fc.boolean(),
      mountData: fc.boolean(),
    },
    { noNullPrototype: true },
  );

const podArb = fc
  .record(
    {
      containers: fc.uniqueArray(containerArb(['a', 'b', 'c', 'd']), {
        minLength: 1,
        maxLength: 3,
        selector: (c) => c.name,
      }),
      init: fc.uniqueArray(containerArb(['i1', 'i2']), { maxLength: 2, selector: (c) => c.name }),
      legacy: fc.boolean(),
      automount: fc.constantFrom(undefined, true, false),
      databases: fc.constantFrom(undefined, 'orders=orders-db', 'a=s1,b=s2'),
      kubePort: fc.constantFrom(undefined, '7443'),
    },
    { noNullPrototype: true },
  )
  .map((g): Pod => {
    const token = g.legacy ? 'default-token-abcde' : 'kube-api-access-xyz12';
    const volume: Volume = g.legacy
      ? { name: token, secret: { secretName: token, defaultMode: 420 } }
      : apiAccess(token);
    const toContainer = (c: (typeof g.containers)[number]): Container => ({
      name: c.name,
      image: 'img',
      ...(c.env.length ? { env: c.env } : {}),
      volumeMounts: [
        ...(c.mountData ? [{ name: 'data', mountPath: '/data' }] : []),
        ...(c.mountToken ? [{ name: token, mountPath: SA, readOnly: true }] : []),
      ],
    });
    const annotations: Record<string, string> = {};
    if (g.databases) annotations['chaperone.dev/databases'] = g.databases;
    if (g.kubePort) annotations['chaperone.dev/kube-port'] = g.kubePort;
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'gen', namespace: 'agents', annotations },
      spec: {
        serviceAccountName: 'default',
        ...(g.automount === undefined ? {} : { automountServiceAccountToken: g.automount }),
        containers: g.containers.map(toContainer),
        ...(g.init.length ? { initContainers: g.init.map(toContainer) } : {}),
        volumes: [{ name: 'data', emptyDir: {} }, volume],
      },
    };
  });

describe('mutate', () => {
  it('for any pod: custody holds, the patch reproduces the result, and a second run is a no-op', () => {
    fc.assert(
      fc.property(podArb, fc.constantFrom('classic', 'native'), (input, mode) => {
        const config = testConfig({ mode: mode as 'classic' | 'native', nativeSidecarsSupported: true });
        const original = structuredClone(input);
        const { pod: out, skipReasons } = mutate(input, config);
        assert.deepEqual(skipReasons, []);
        assert.deepStrictEqual(input, original, 'the input is not modified');
        assert.deepEqual(custodyViolations(out), []);
        assert.deepStrictEqual(applyPatch(input, diff(input, out)), out);
        const again = mutate(out, config);
        assert.deepEqual(again.skipReasons, ['already_injected']);
        assert.strictEqual(again.pod, out);
        // Every agent container is redirected and sees only the placeholder at the token path.
        for (const c of [...(out.spec.initContainers ?? []), ...out.spec.containers]) {
          if (c.name === 'chaperone-sidecar') continue;
          const env = c.env ?? [];
          assert.equal(env.filter((e) => e.name === 'KUBERNETES_SERVICE_HOST').length, 1);
          assert.equal(env.find((e) => e.name === 'KUBERNETES_SERVICE_HOST')?.value, '127.0.0.1');
          assert.deepEqual(
            (c.volumeMounts ?? []).filter((m) => m.mountPath === SA),
            [{ name: 'chaperone-agent-sa', mountPath: SA, readOnly: true }],
          );
        }
      }),
      { numRuns: 300 },
    );
  });

  it('handles reinvocation after another webhook added a container', () => {
    const once = mutate(pod({ volumes: [apiAccess('kube-api-access-1')] }), TEST_CONFIG).pod;
    const other = structuredClone(once);
    other.spec.containers.push({ name: 'log-shipper', image: 'fluent-bit' });
    const again = mutate(other, TEST_CONFIG);
    assert.deepEqual(again.skipReasons, []);
    const shipper = again.pod.spec.containers.find((c) => c.name === 'log-shipper');
    assert.equal(shipper?.env?.find((e) => e.name === 'KUBERNETES_SERVICE_HOST')?.value, '127.0.0.1');
    assert.equal(again.pod.spec.containers[0]?.name, 'chaperone-sidecar');
    const patch = diff(other, again.pod);
    assert.ok(
      patch.every((op) => op.path.startsWith('/spec/containers/2')),
      JSON.stringify(patch),
    );
  });

  it('skips with reasons, returning the very same object', () => {
    for (const [p, ns, reason] of [
      [pod({}, { 'chaperone.dev/inject': 'false' }), 'agents', 'opted_out'],
      [pod({ hostNetwork: true }), 'agents', 'host_network'],
      [pod(), 'kube-system', 'excluded_namespace'],
      [pod(), 'chaperone-system', 'excluded_namespace'],
    ] as const) {
      const r = mutate(p, TEST_CONFIG, { namespace: ns });
      assert.deepEqual(r.skipReasons, [reason]);
      assert.strictEqual(r.pod, p);
    }
  });

  it('rejects pods it cannot guard, saying what to change', () => {
    rejected(() => mutate(pod({}, { 'chaperone.dev/inject': 'maybe' }), TEST_CONFIG), 'chaperone.dev/inject');
    rejected(
      () => mutate(pod({ containers: [{ name: 'chaperone-sidecar' }] }), TEST_CONFIG),
      'spec.containers',
    );
    rejected(
      () => mutate(pod({ containers: [{ name: 'agent', ports: [{ containerPort: 6443 }] }] }), TEST_CONFIG),
      /port 6443 \(the Kubernetes API listener\) is also declared by container "agent"/,
    );
    rejected(
      () => mutate(pod({}, { 'chaperone.dev/metrics-port': '6443' }), TEST_CONFIG),
      /port 6443 for the metrics listener is already used/,
    );
    rejected(
      () => mutate(pod({}, { 'chaperone.dev/databases': 'orders' }), TEST_CONFIG),
      'chaperone.dev/databases',
    );
    rejected(() => mutate(pod({}, { 'chaperone.dev/databases': 'a=x,a=y' }), TEST_CONFIG), /declared twice/);
    rejected(() => mutate(pod({}, { 'chaperone.dev/databases': 'Bad_Name=x' }), TEST_CONFIG), /DNS label/);
    rejected(
      () => mutate(pod({}, { 'chaperone.dev/cpu-request': 'lots' }), TEST_CONFIG),
      'chaperone.dev/cpu-request',
    );
    rejected(
      () => mutate(pod({}, { 'chaperone.dev/log-level': 'verbose' }), TEST_CONFIG),
      'chaperone.dev/log-level',
    );
    rejected(
      () =>
        mutate(
          pod({
            containers: [
              { name: 'agent', volumeMounts: [{ name: 'cfg', mountPath: `${SA}/token`, subPath: 'token' }] },
            ],
            volumes: [{ name: 'cfg', configMap: { name: 'x' } }],
          }),
          TEST_CONFIG,
        ),
      /reserved for the sidecar's service-account placeholder/,
    );
    rejected(
      () =>
        mutate(
          pod({
            containers: [{ name: 'agent', volumeMounts: [{ name: 'chaperone-token', mountPath: '/t' }] }],
          }),
          TEST_CONFIG,
        ),
      /belongs to the Chaperone sidecar/,
    );
    rejected(
      () =>
        mutate(
          pod({
            containers: [
              { name: 'agent', volumeMounts: [{ name: 'default-token-abcde', mountPath: '/elsewhere' }] },
            ],
            volumes: [{ name: 'default-token-abcde', secret: { secretName: 'default-token-abcde' } }],
          }),
          TEST_CONFIG,
        ),
      /the service-account token Secret default-token-abcde at \/elsewhere/,
    );
    assert.throws(
      () => mutate({ spec: {} } as unknown as Pod, TEST_CONFIG),
      /spec\.containers: must be a list/,
    );
  });

  it('leaves the pod’s own Secret volumes alone', () => {
    // A Secret volume named like another account's token is the user's own data: untouched.
    const p = pod({
      serviceAccountName: 'builder',
      containers: [{ name: 'agent', volumeMounts: [{ name: 'v', mountPath: '/certs' }] }],
      volumes: [{ name: 'v', secret: { secretName: 'tls-certs' } }],
    });
    const out = mutate(p, TEST_CONFIG).pod;
    assert.ok(out.spec.volumes?.some((v) => v.name === 'v'));
  });
});
