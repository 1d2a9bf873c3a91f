import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeClient } from '@chaperone/shared/kube';
import { parseEndpoint, parseLabelSelector } from './egress-endpoint.ts';
import { isManagedNamespace } from './namespace-controller.ts';
import { desiredNetworkPolicy, type NetworkPolicy } from './network-policy.ts';
import { NetworkPolicyObject, policyDrift } from './network-policy-controller.ts';

const settings = {
  apiServer: [parseEndpoint('10.0.0.1:6443'), parseEndpoint('10.0.0.2:6443')],
  dnsPodSelector: { 'k8s-app': 'kube-dns' },
  dnsCidrs: ['169.254.20.10/32'],
  collector: {
    namespace: 'chaperone-system',
    podSelector: { 'app.kubernetes.io/name': 'chaperone-collector' },
    port: 8443,
  },
  upstreams: [parseEndpoint('10.1.0.0/16:5432')],
};

describe('desiredNetworkPolicy', () => {
  const p = desiredNetworkPolicy('agents', settings, [
    parseEndpoint('10.2.3.4:5432'),
    parseEndpoint('10.9.9.9:443'),
  ]);
  it('selects injected pods and restricts egress only', () => {
    assert.equal(p.metadata.name, 'chaperone-egress');
    assert.equal(p.metadata.namespace, 'agents');
    assert.equal(p.metadata.labels?.['app.kubernetes.io/managed-by'], 'chaperone-injector');
    assert.deepEqual(p.spec.podSelector, { matchLabels: { 'chaperone.dev/injected': 'true' } });
    assert.deepEqual(p.spec.policyTypes, ['Egress']);
  });
  it('allows DNS, the API server, the collector and the upstreams, grouped by port', () => {
    assert.deepEqual(p.spec.egress, [
      {
        to: [
          { namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } },
          { ipBlock: { cidr: '169.254.20.10/32' } },
        ],
        ports: [
          { protocol: 'UDP', port: 53 },
          { protocol: 'TCP', port: 53 },
        ],
      },
      {
        to: [{ ipBlock: { cidr: '10.0.0.1/32' } }, { ipBlock: { cidr: '10.0.0.2/32' } }],
        ports: [{ protocol: 'TCP', port: 6443 }],
      },
      {
        to: [
          {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'chaperone-system' } },
            podSelector: { matchLabels: { 'app.kubernetes.io/name': 'chaperone-collector' } },
          },
        ],
        ports: [{ protocol: 'TCP', port: 8443 }],
      },
      { to: [{ ipBlock: { cidr: '10.9.9.9/32' } }], ports: [{ protocol: 'TCP', port: 443 }] },
      {
        to: [{ ipBlock: { cidr: '10.1.0.0/16' } }, { ipBlock: { cidr: '10.2.3.4/32' } }],
        ports: [{ protocol: 'TCP', port: 5432 }],
      },
    ]);
  });
  it('is deterministic (drift detection compares like with like)', () => {
    const again = desiredNetworkPolicy('agents', settings, [
      parseEndpoint('10.9.9.9:443'),
      parseEndpoint('10.2.3.4:5432'),
    ]);
    assert.equal(policyDrift(again, p), undefined);
    const edited = structuredClone(p);
    edited.spec.egress = [];
    assert.equal(policyDrift(edited, p), 'spec');
    const relabelled = structuredClone(p);
    delete relabelled.metadata.labels?.['app.kubernetes.io/managed-by'];
    assert.equal(policyDrift(relabelled, p), 'label app.kubernetes.io/managed-by');
  });
});

describe('isManagedNamespace', () => {
  const ns = (labels: Record<string, string>, phase = 'Active') => ({
    metadata: { name: 'agents', labels },
    status: { phase },
  });
  it('follows the opt-in label, the revision and exclusions', () => {
    assert.equal(isManagedNamespace(ns({ 'chaperone.dev/inject': 'enabled' }), undefined, []), true);
    assert.equal(isManagedNamespace(ns({}), undefined, []), false);
    assert.equal(
      isManagedNamespace(ns({ 'chaperone.dev/inject': 'enabled' }, 'Terminating'), undefined, []),
      false,
    );
    assert.equal(isManagedNamespace(ns({ 'chaperone.dev/inject': 'enabled' }), undefined, ['agents']), false);
    assert.equal(
      isManagedNamespace(
        ns({ 'chaperone.dev/inject': 'enabled', 'chaperone.dev/revision': 'x' }),
        undefined,
        [],
      ),
      false,
    );
    assert.equal(
      isManagedNamespace(ns({ 'chaperone.dev/inject': 'enabled', 'chaperone.dev/revision': 'x' }), 'x', []),
      true,
    );
    assert.equal(isManagedNamespace(undefined, undefined, []), false);
  });
});

describe('egress endpoints and selectors', () => {
  it('parses cidr:port forms', () => {
    assert.deepEqual(parseEndpoint('10.0.0.5:5432'), { cidr: '10.0.0.5/32', port: 5432 });
    assert.deepEqual(parseEndpoint('10.0.0.0/8:443'), { cidr: '10.0.0.0/8', port: 443 });
    assert.deepEqual(parseEndpoint('[fd00::1]:443'), { cidr: 'fd00::1/128', port: 443 });
    assert.deepEqual(parseEndpoint('[fd00::]/64:443'), { cidr: 'fd00::/64', port: 443 });
  });
  it('rejects what is not cidr:port', () => {
    for (const bad of [
      '10.0.0.5',
      'db.internal:5432',
      '10.0.0.5/33:1',
      '10.0.0.5:0',
      '10.0.0.5:99999',
      '10.0.0.5/x:80',
    ]) {
      assert.throws(() => parseEndpoint(bad), Error, bad);
    }
  });
  it('parses key=value selectors', () => {
    assert.deepEqual(parseLabelSelector('k8s-app=kube-dns'), { 'k8s-app': 'kube-dns' });
    assert.deepEqual(parseLabelSelector('a=b, c=d'), { a: 'b', c: 'd' });
    assert.throws(() => parseLabelSelector('nonsense'));
  });
});

describe('NetworkPolicyObject', () => {
  const agents = { metadata: { name: 'agents', labels: { 'chaperone.dev/inject': 'enabled' } } };
  function fake() {
    const created: NetworkPolicy[] = [];
    const client = {
      async get(path: string) {
        if (path === '/api/v1/namespaces/default/endpoints/kubernetes')
          return { subsets: [{ addresses: [{ ip: '10.0.0.7' }], ports: [{ name: 'https', port: 6443 }] }] };
        return undefined;
      },
      async create(_path: string, body: NetworkPolicy) {
        created.push(body);
        return body;
      },
    } as unknown as KubeClient;
    return { client, created };
  }
  const object = (client: KubeClient) =>
    new NetworkPolicyObject({ client, settings: { ...settings, apiServer: [] }, resyncIntervalMs: 60_000 });

  // Fails when a policy is written before the API server's addresses are read: it would
  // leave the sidecars unable to reach the API server until the next resync.
  it('writes no policy before it knows the API server’s addresses', async () => {
    const { client, created } = fake();
    const np = object(client);
    const pending = np.reconcile('agents', agents);
    const stop = new AbortController();
    const running = np.run(stop.signal, () => {});
    try {
      assert.equal(await pending, 'created');
      const api = created[0]?.spec.egress.find((r) => r.ports.some((p) => p.port === 6443));
      assert.deepEqual(api?.to, [{ ipBlock: { cidr: '10.0.0.7/32' } }]);
    } finally {
      stop.abort();
      await running;
    }
  });

  it('never leaves a reconciliation waiting when stopped before reading them', {
    timeout: 5000,
  }, async () => {
    const { client, created } = fake();
    const np = object(client);
    const stop = new AbortController();
    stop.abort();
    await np.run(stop.signal, () => {});
    assert.equal(await np.reconcile('agents', agents), 'created');
    assert.equal(created.length, 1);
  });
});
