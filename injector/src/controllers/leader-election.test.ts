import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeApiError, type KubeClient } from '@chaperone/shared/kube';
import { LeaderElector, type Lease, microTime } from './leader-election.ts';

/** An in-memory Lease store with the API server's optimistic concurrency. */
class FakeLeases {
  lease: Lease | undefined;
  rv = 0;
  client(): KubeClient {
    const store = this;
    return {
      async get() {
        return store.lease ? structuredClone(store.lease) : undefined;
      },
      async create(path: string, body: Lease) {
        if (store.lease) throw new KubeApiError('POST', path, 409, { reason: 'AlreadyExists' });
        store.lease = {
          ...structuredClone(body),
          metadata: { ...body.metadata, resourceVersion: String(++store.rv) },
        };
        return structuredClone(store.lease);
      },
      async replace(path: string, body: Lease) {
        if (body.metadata.resourceVersion !== store.lease?.metadata.resourceVersion) {
          throw new KubeApiError('PUT', path, 409, { reason: 'Conflict' });
        }
        store.lease = {
          ...structuredClone(body),
          metadata: { ...body.metadata, resourceVersion: String(++store.rv) },
        };
        return structuredClone(store.lease);
      },
    } as unknown as KubeClient;
  }
}

function elector(store: FakeLeases, identity: string, clock: { now: number }) {
  return new LeaderElector({
    client: store.client(),
    namespace: 'chaperone-system',
    name: 'chaperone-injector',
    identity,
    leaseDurationMs: 15_000,
    renewIntervalMs: 2_000,
    renewDeadlineMs: 10_000,
    onStartedLeading: () => {},
    now: () => clock.now,
  });
}

describe('leader election on a Lease', () => {
  it('one holder at a time; a silent holder is replaced after the lease duration', async () => {
    const store = new FakeLeases();
    const clock = { now: Date.parse('2030-01-01T00:00:00Z') };
    const a = elector(store, 'a', clock);
    const b = elector(store, 'b', clock);
    assert.equal(await a.tryAcquireOrRenew(), true);
    assert.equal(store.lease?.spec.holderIdentity, 'a');
    assert.equal(await b.tryAcquireOrRenew(), false);
    clock.now += 2_000;
    assert.equal(await a.tryAcquireOrRenew(), true, 'the holder renews');
    clock.now += 10_000;
    assert.equal(await b.tryAcquireOrRenew(), false, 'the record changed recently (by b’s clock)');
    // a goes silent; b takes over once the record has not changed for a lease duration.
    clock.now += 16_000;
    assert.equal(await b.tryAcquireOrRenew(), true);
    assert.equal(store.lease?.spec.holderIdentity, 'b');
    assert.equal(store.lease?.spec.leaseTransitions, 1);
    assert.equal(await a.tryAcquireOrRenew(), false, 'the old holder cannot renew over b');
  });

  it('loses a race cleanly (optimistic concurrency)', async () => {
    const store = new FakeLeases();
    const clock = { now: Date.parse('2030-01-01T00:00:00Z') };
    const a = elector(store, 'a', clock);
    assert.equal(await a.tryAcquireOrRenew(), true);
    // Someone writes the Lease between our read and our write.
    const client = store.client();
    const original = client.get.bind(client);
    const racing = new LeaderElector({
      client: {
        ...client,
        get: async (p: string) => {
          const l = (await original(p)) as Lease;
          store.lease = {
            ...(store.lease as Lease),
            metadata: { ...(store.lease as Lease).metadata, resourceVersion: String(++store.rv) },
          };
          return l;
        },
        replace: client.replace,
        create: client.create,
      } as unknown as KubeClient,
      namespace: 'chaperone-system',
      name: 'chaperone-injector',
      identity: 'a',
      leaseDurationMs: 15_000,
      renewIntervalMs: 2_000,
      renewDeadlineMs: 10_000,
      onStartedLeading: () => {},
      now: () => clock.now,
    });
    assert.equal(await racing.tryAcquireOrRenew(), false);
  });

  it('a released Lease is taken at once', async () => {
    const store = new FakeLeases();
    const clock = { now: Date.parse('2030-01-01T00:00:00Z') };
    const a = elector(store, 'a', clock);
    const b = elector(store, 'b', clock);
    const stop = new AbortController();
    let led = 0;
    const leader = new LeaderElector({
      client: store.client(),
      namespace: 'chaperone-system',
      name: 'chaperone-injector',
      identity: 'a',
      leaseDurationMs: 15_000,
      renewIntervalMs: 10,
      renewDeadlineMs: 100,
      onStartedLeading: () => {
        led++;
        stop.abort();
      },
      now: () => clock.now,
    });
    void a;
    await leader.run(stop.signal);
    assert.equal(led, 1);
    assert.equal(store.lease?.spec.holderIdentity, '', 'released on the way out');
    assert.equal(await b.tryAcquireOrRenew(), true);
  });

  it('writes MicroTime with six fractional digits', () => {
    assert.equal(microTime(Date.parse('2030-01-02T03:04:05.678Z')), '2030-01-02T03:04:05.678000Z');
  });
});
