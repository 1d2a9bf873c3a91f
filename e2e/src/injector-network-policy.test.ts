// The NetworkPolicy controller and leader election against the real control
// plane: one policy per opted-in namespace, put back when deleted or edited,
// removed when the label goes; only the Lease holder acts, and another
// replica takes over when it dies.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NetworkPolicy } from '@chaperone/injector';
import { kubeInfo } from './environment.ts';
import { deleteNamespace, type Injector, optInNamespace, startInjector } from './injector-harness.ts';
import { kubectl, kubectlJson } from './kubectl.ts';
import { waitFor } from './process.ts';

const kube = kubeInfo();
const run = (args: string[], input?: string) =>
  kubectl(kube.kubeconfigPath, args, input === undefined ? {} : { input });
const policy = (ns: string) => {
  const r = run(['get', 'networkpolicy', 'chaperone-egress', '-n', ns, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as NetworkPolicy) : undefined;
};
const apiPort = Number(new URL(kube.server).port);
/** The injector's leader-election Lease. */
const lease = (inj: Injector) =>
  kubectlJson(kube.kubeconfigPath, ['get', 'lease', inj.instance, '-n', inj.namespace, '-o', 'json']) as {
    spec: { holderIdentity: string; leaseTransitions: number };
  };

describe('injector: NetworkPolicy per opted-in namespace', () => {
  let inj: Injector;
  let standby: Injector | undefined;
  const namespaces: string[] = [];
  before(async () => {
    // The admin removes a namespace's opt-in label below: an exempt identity's privilege.
    inj = await startInjector(kube, { args: ['--exempt-groups=system:masters'] });
  });
  after(async () => {
    for (const ns of namespaces) deleteNamespace(kube, ns);
    await standby?.cleanup();
    await inj?.cleanup();
  });

  it('creates the policy when a namespace is labelled, repairs it, removes it with the label', async () => {
    const ns = optInNamespace(kube, inj, 'netpol');
    namespaces.push(ns);
    const created = await waitFor(async () => policy(ns), {
      what: `the NetworkPolicy in ${ns}`,
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    assert.deepEqual(created.spec.podSelector, { matchLabels: { 'chaperone.dev/injected': 'true' } });
    assert.deepEqual(created.spec.policyTypes, ['Egress']);
    const ports = created.spec.egress.flatMap((r) => r.ports.map((p) => `${p.protocol}/${p.port}`));
    assert.ok(ports.includes('UDP/53') && ports.includes('TCP/53'), 'DNS');
    const api = created.spec.egress.find((r) => r.ports.some((p) => p.port === apiPort));
    assert.deepEqual(api?.to, [{ ipBlock: { cidr: '127.0.0.1/32' } }], 'the API server');
    assert.equal(created.spec.egress.length, 2, 'nothing else');

    // Deleted: put back.
    let r = run(['delete', 'networkpolicy', 'chaperone-egress', '-n', ns]);
    assert.equal(r.code, 0, r.stderr);
    const recreated = await waitFor(
      async () => {
        const p = policy(ns);
        return p && p.metadata.uid !== created.metadata.uid ? p : undefined;
      },
      { what: 'the deleted NetworkPolicy to come back', timeoutMs: 20_000, intervalMs: 200 },
    );
    assert.deepEqual(recreated.spec, created.spec);

    // Edited (egress opened to everything): reverted.
    r = run([
      'patch',
      'networkpolicy',
      'chaperone-egress',
      '-n',
      ns,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { egress: [{}] } }),
    ]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(
      async () => {
        const p = policy(ns);
        return p && JSON.stringify(p.spec) === JSON.stringify(created.spec);
      },
      { what: 'the edited NetworkPolicy to be repaired', timeoutMs: 20_000, intervalMs: 200 },
    );

    // Declared upstreams (namespace annotation) join the policy.
    r = run(['annotate', 'namespace', ns, 'chaperone.dev/egress=10.20.30.40:5432,10.20.0.0/16:5432']);
    assert.equal(r.code, 0, r.stderr);
    const withUpstream = await waitFor(
      async () => {
        const p = policy(ns);
        return p?.spec.egress.find((e) => e.ports.some((x) => x.port === 5432));
      },
      { what: 'the upstream egress rule', timeoutMs: 20_000, intervalMs: 200 },
    );
    assert.deepEqual(withUpstream.to, [
      { ipBlock: { cidr: '10.20.0.0/16' } },
      { ipBlock: { cidr: '10.20.30.40/32' } },
    ]);

    // The label goes: so does the policy.
    r = run(['label', 'namespace', ns, 'chaperone.dev/inject-']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(async () => policy(ns) === undefined, {
      what: 'the NetworkPolicy to be removed with the label',
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    assert.ok(
      ((await inj.metric('chaperone_injector_network_policy_actions_total{action="created"}')) ?? 0) >= 2,
    );
    assert.ok(
      ((await inj.metric('chaperone_injector_network_policy_actions_total{action="repaired"}')) ?? 0) >= 1,
    );
    assert.ok(
      ((await inj.metric('chaperone_injector_network_policy_actions_total{action="deleted"}')) ?? 0) >= 1,
    );
  });

  it('acts from one replica at a time; a standby takes over when the leader dies', async () => {
    standby = await startInjector(kube, { replicaOf: inj });
    assert.equal(await inj.metric('chaperone_injector_leader'), 1);
    assert.equal(await standby.metric('chaperone_injector_leader'), 0);
    const leaderIdentity = lease(inj).spec.holderIdentity;
    assert.ok(leaderIdentity);
    // Both serve the same certificate (from the shared Secret).
    assert.ok(standby.logs().includes('"msg":"webhook listening"'));

    const ns = optInNamespace(kube, inj, 'failover');
    namespaces.push(ns);
    await waitFor(async () => policy(ns), {
      what: 'the policy from the leader',
      timeoutMs: 20_000,
      intervalMs: 200,
    });

    // The leader dies without releasing the Lease; the standby waits it out, then acts.
    await inj.kill();
    await waitFor(async () => (await standby?.metric('chaperone_injector_leader')) === 1, {
      what: 'the standby to take the Lease',
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    const taken = lease(inj);
    assert.notEqual(taken.spec.holderIdentity, leaderIdentity);
    assert.ok(taken.spec.leaseTransitions >= 1);
    const r = run(['delete', 'networkpolicy', 'chaperone-egress', '-n', ns]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(async () => policy(ns), {
      what: 'the new leader to repair the policy',
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    // Clean hand-over back: a SIGTERM releases the Lease at once.
    await inj.restart();
    await standby.stop();
    await waitFor(async () => (await inj.metric('chaperone_injector_leader')) === 1, {
      what: 'the restarted replica to take over the released Lease',
      timeoutMs: 10_000,
      intervalMs: 200,
    });
    assert.match(standby.logs(), /released the Lease/);
  });
});
