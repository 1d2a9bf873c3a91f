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

  describe('declared databases', () => {
    const envOf = (out: Pod, container = 'agent') =>
      Object.fromEntries(
        (out.spec.containers.find((c) => c.name === container)?.env ?? []).map((e) => [e.name, e.value]),
      );
    const db = (value: string, spec: Partial<Pod['spec']> = {}) =>
      mutate(pod(spec, { 'chaperone.dev/databases': value }), TEST_CONFIG).pod;

    // Fails when the URL carries anything beyond the declared name (a password), or
    // when the default DATABASE_URL is dropped or given to a database other than the first.
    it('gives agents libpq’s variables and a URL without a password, in DATABASE_URL by default', () => {
      const env = envOf(db('orders=orders-db,billing=billing-db'));
      assert.equal(env.PGHOST, '127.0.0.1');
      assert.equal(env.PGPORT, '5432');
      assert.equal(env.PGDATABASE, 'orders');
      assert.equal(env.PGUSER, 'orders');
      assert.equal(env.PGSSLMODE, 'disable');
      assert.equal(env.DATABASE_URL, 'postgresql://orders@127.0.0.1:5432/orders?sslmode=disable');
      assert.equal(env.CHAPERONE_DB_BILLING_PORT, '5433');
      assert.equal(env.PGPASSWORD, undefined);
      for (const [k, v] of Object.entries(env)) assert.doesNotMatch(`${k}=${v}`, /PASSWORD|:[^/@]*@/, k);
    });

    it('puts each URL where env= says, and then claims no DATABASE_URL', () => {
      const env = envOf(
        db('orders=orders-db;env=ORDERS_URL, billing=billing-db ; env = BILLING_URL', {
          containers: [{ name: 'agent', env: [{ name: 'DATABASE_URL', value: 'sqlite:///x' }] }],
        }),
      );
      assert.equal(env.ORDERS_URL, 'postgresql://orders@127.0.0.1:5432/orders?sslmode=disable');
      assert.equal(env.BILLING_URL, 'postgresql://billing@127.0.0.1:5433/billing?sslmode=disable');
      assert.equal(env.DATABASE_URL, 'sqlite:///x', 'the container’s own variable is kept');
      assert.equal(
        envOf(db('a=s1,b=s2;env=DATABASE_URL')).DATABASE_URL,
        'postgresql://b@127.0.0.1:5433/b?sslmode=disable',
      );
    });

    // Fails when CHAPERONE_DATABASE_TLS=direct is dropped from the sidecar: agents are told
    // sslmode=disable because the sidecar answers SSLRequest with N.
    it('pins what the sidecar answers to SSLRequest to what agents are told', () => {
      const out = db('orders=orders-db');
      const sidecar = out.spec.containers[0];
      const env = Object.fromEntries((sidecar?.env ?? []).map((e) => [e.name, e.value]));
      assert.equal(env.CHAPERONE_DATABASE_TLS, 'direct');
      assert.equal(env.CHAPERONE_DATABASES, 'orders=5432');
    });

    it('rejects a bad env= with a message naming the annotation', () => {
      const a = 'chaperone.dev/databases';
      for (const [value, why] of [
        ['orders=orders-db;env=PGPASSWORD', /env PGPASSWORD .* is reserved/],
        ['orders=orders-db;env=KUBERNETES_SERVICE_HOST', /reserved/],
        ['orders=orders-db;env=CHAPERONE_X', /reserved/],
        ['orders=orders-db;env=9LIVES', /not an environment variable name/],
        ['orders=orders-db;env=', /not an environment variable name/],
        ['orders=orders-db;env=A;env=B', /gives env twice/],
        ['a=s1;env=URL,b=s2;env=URL', /env URL is given to two databases/],
        ['orders=orders-db;evn=URL', /unknown option "evn" .*did you mean env/],
      ] as const) {
        rejected(() => db(value), why);
        rejected(() => db(value), a);
      }
    });

    // Fails when databaseSecretReads misses one of these routes (volume, projected
    // volume, secretKeyRef, envFrom; containers and init containers).
    it('rejects a pod whose agent containers read a declared Secret themselves', () => {
      const secretVolume = { name: 'creds', secret: { secretName: 'orders-db' } };
      const projected: Volume = {
        name: 'creds',
        projected: { sources: [{ secret: { name: 'orders-db' } }] },
      };
      const cases: [Partial<Pod['spec']>, RegExp][] = [
        [
          {
            containers: [{ name: 'agent', volumeMounts: [{ name: 'creds', mountPath: '/creds' }] }],
            volumes: [secretVolume],
          },
          /container agent mounts Secret orders-db \(volume creds\) at \/creds/,
        ],
        [
          {
            containers: [{ name: 'agent', volumeMounts: [{ name: 'creds', mountPath: '/c' }] }],
            volumes: [projected],
          },
          /mounts Secret orders-db/,
        ],
        [
          {
            containers: [
              {
                name: 'agent',
                env: [
                  { name: 'PGPASSWORD', valueFrom: { secretKeyRef: { name: 'orders-db', key: 'password' } } },
                ],
              },
            ],
          },
          /container agent reads Secret orders-db into env PGPASSWORD/,
        ],
        [
          { initContainers: [{ name: 'migrate', envFrom: [{ secretRef: { name: 'orders-db' } }] }] },
          /container migrate imports Secret orders-db into its env/,
        ],
      ];
      for (const [spec, why] of cases) {
        rejected(() => db('orders=orders-db', spec), why);
        rejected(() => db('orders=orders-db', spec), 'chaperone.dev/databases');
      }
      // Other Secrets stay the pod's business; the declared one is unmounted: fine.
      const other = db('orders=orders-db', {
        containers: [{ name: 'agent', envFrom: [{ secretRef: { name: 'model-api' } }] }],
        volumes: [secretVolume],
      });
      assert.deepEqual(custodyViolations(other), []);
    });

    it('the independent custody check sees a declared Secret in an agent container', () => {
      const out = db('orders=orders-db');
      const broken = structuredClone(out);
      const agent = broken.spec.containers.find((c) => c.name === 'agent') as Container;
      agent.envFrom = [{ secretRef: { name: 'orders-db' } }];
      assert.deepEqual(custodyViolations(broken), [
        'container agent imports Secret orders-db into its env (envFrom)',
      ]);
    });
  });

  describe('the collector’s CA', () => {
    const withCa = testConfig({ collectorCa: true });
    // Fails when the ConfigMap volume is mounted into an agent container or not into the
    // sidecar, or when the sidecar is not told where it is.
    it('is mounted into the sidecar only, and the sidecar is told where', () => {
      const out = mutate(pod(), withCa).pod;
      const volume = out.spec.volumes?.find((v) => v.configMap?.name === 'chaperone-collector-ca');
      assert.deepEqual(volume, {
        name: 'chaperone-collector-ca',
        configMap: {
          name: 'chaperone-collector-ca',
          items: [{ key: 'ca.crt', path: 'ca.crt' }],
          defaultMode: 420,
        },
      });
      const [sidecar, agent] = out.spec.containers;
      assert.ok(
        sidecar?.volumeMounts?.some(
          (m) => m.name === volume.name && m.mountPath === '/var/run/chaperone/collector-ca' && m.readOnly,
        ),
      );
      assert.equal(
        sidecar?.env?.find((e) => e.name === 'CHAPERONE_COLLECTOR_CA_FILE')?.value,
        '/var/run/chaperone/collector-ca/ca.crt',
      );
      assert.ok(!agent?.volumeMounts?.some((m) => m.name === volume.name));
      rejected(
        () =>
          mutate(
            pod({
              containers: [
                { name: 'agent', volumeMounts: [{ name: 'chaperone-collector-ca', mountPath: '/ca' }] },
              ],
            }),
            withCa,
          ),
        /belongs to the Chaperone sidecar/,
      );
    });

    it('is left out without a collector, or without the setting', () => {
      const { collectorUrl: _, ...noCollector } = withCa;
      for (const config of [TEST_CONFIG, Object.freeze(noCollector)]) {
        const out = mutate(pod(), config).pod;
        assert.ok(!out.spec.volumes?.some((v) => v.name === 'chaperone-collector-ca'));
        assert.ok(!JSON.stringify(out).includes('CHAPERONE_COLLECTOR_CA_FILE'));
      }
    });
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
