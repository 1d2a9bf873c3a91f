import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeClient, WatchEvent } from '@chaperone/shared/kube';
import {
  isOurs,
  type Namespace,
  NamespaceController,
  type NamespacedAction,
  type NamespacedObject,
} from './namespace-controller.ts';

const optedIn = (name: string, revision?: string): Namespace => ({
  metadata: {
    name,
    labels: {
      'chaperone.dev/inject': 'enabled',
      ...(revision ? { 'chaperone.dev/revision': revision } : {}),
    },
  },
});
const plain = (name: string): Namespace => ({ metadata: { name } });

/**
 * Lists and watches at the level of the client's calls (the informer's own
 * wire handling is tested in informer.test.ts, the whole controller against
 * the real API server in e2e/src/injector-*.test.ts): `emit` sends a watch
 * event on a collection.
 */
function fakeClient(lists: Record<string, unknown[]>) {
  const watchers = new Map<string, (e: WatchEvent<unknown>) => void>();
  const client = {
    async request(method: string, path: string) {
      assert.equal(method, 'GET');
      return { status: 200, body: { metadata: { resourceVersion: '1' }, items: lists[path] ?? [] } };
    },
    watch(path: string, _q: unknown, onEvent: (e: WatchEvent<unknown>) => void, signal: AbortSignal) {
      watchers.set(path, onEvent);
      return new Promise<void>((resolve) =>
        signal.addEventListener('abort', () => resolve(), { once: true }),
      );
    },
  } as unknown as KubeClient;
  const emit = (path: string, type: 'ADDED' | 'MODIFIED' | 'DELETED', object: unknown) => {
    const w = watchers.get(path);
    assert.ok(w, `a watch on ${path}`);
    w({ type, object } as WatchEvent<unknown>);
  };
  return { client, emit, watching: () => watchers.size };
}

/** A managed object that records what it was asked to do. */
class Recorder implements NamespacedObject {
  readonly calls: string[] = [];
  readonly counted: string[] = [];
  failNext = 0;
  requeue: () => void = () => {};
  readonly what: string;
  readonly watch: { path: string; query: Record<string, string> };
  constructor(what: string, watch: { path: string; query: Record<string, string> }) {
    this.what = what;
    this.watch = watch;
  }
  async reconcile(namespace: string, ns: Namespace | undefined): Promise<NamespacedAction> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('API server unavailable');
    }
    this.calls.push(`${namespace}:${ns ? 'wanted' : 'remove'}`);
    return ns ? 'created' : 'deleted';
  }
  async run(_signal: AbortSignal, requeue: () => void): Promise<void> {
    this.requeue = requeue;
  }
  count(action: NamespacedAction | 'error'): void {
    this.counted.push(action);
  }
}

async function until(what: string, check: () => boolean): Promise<void> {
  for (const deadline = Date.now() + 5000; Date.now() < deadline; ) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('NamespaceController', () => {
  // Fails when a kind is skipped for a namespace, when an object in a namespace that is
  // no longer opted in is not looked at (removed), or when a failure is not retried.
  it('reconciles every kind in opted-in namespaces, removes its objects elsewhere, retries failures', async () => {
    const policies = new Recorder('the policy', { path: '/apis/x/v1/policies', query: {} });
    const cas = new Recorder('the CA', { path: '/api/v1/configmaps', query: {} });
    const { client, emit, watching } = fakeClient({
      '/api/v1/namespaces': [
        optedIn('agents', 'r1'),
        plain('web'),
        optedIn('other-rev', 'r2'),
        optedIn('excl', 'r1'),
      ],
      // A CA left in a namespace that opted out while the controller was not running.
      '/api/v1/configmaps': [{ metadata: { name: 'chaperone-collector-ca', namespace: 'gone' } }],
    });
    const c = new NamespaceController({
      client,
      objects: [policies, cas],
      revision: 'r1',
      excludedNamespaces: ['excl'],
      resyncIntervalMs: 60_000,
    });
    const stop = new AbortController();
    const running = c.run(stop.signal);
    try {
      await until('the initial reconciliations', () => policies.calls.length === 1 && cas.calls.length === 2);
      assert.deepEqual(policies.calls, ['agents:wanted']);
      assert.deepEqual([...cas.calls].sort(), ['agents:wanted', 'gone:remove']);
      await until('the watches', () => watching() === 3);

      // A namespace labelled for this revision: both kinds; the label gone: both removed.
      emit('/api/v1/namespaces', 'MODIFIED', optedIn('web', 'r1'));
      await until('web', () => policies.calls.includes('web:wanted') && cas.calls.includes('web:wanted'));
      emit('/api/v1/namespaces', 'MODIFIED', plain('agents'));
      await until(
        'agents removed',
        () => policies.calls.includes('agents:remove') && cas.calls.includes('agents:remove'),
      );

      // An event on one kind reconciles that kind only.
      const before = policies.calls.length;
      cas.failNext = 1;
      emit('/api/v1/configmaps', 'DELETED', {
        metadata: { name: 'chaperone-collector-ca', namespace: 'web' },
      });
      await until('the retried CA', () => cas.calls.filter((x) => x === 'web:wanted').length === 2);
      assert.equal(policies.calls.length, before);
      assert.ok(cas.counted.includes('error'));

      // A kind asks for everything again (a new CA bundle): every namespace it knows of.
      cas.calls.length = 0;
      cas.requeue();
      await until('the requeue', () => cas.calls.length >= 5);
      assert.deepEqual([...new Set(cas.calls)].sort(), [
        'agents:remove',
        'excl:remove',
        'gone:remove',
        'other-rev:remove',
        'web:wanted',
      ]);
    } finally {
      stop.abort();
      await running;
    }
  });

  it('knows its own objects by their management labels and revision', () => {
    const labels = { 'app.kubernetes.io/managed-by': 'chaperone-injector', 'chaperone.dev/revision': 'r1' };
    assert.equal(isOurs({ labels }, 'r1'), true);
    assert.equal(isOurs({ labels }, undefined), false);
    assert.equal(
      isOurs({ labels: { 'app.kubernetes.io/managed-by': 'chaperone-injector' } }, undefined),
      true,
    );
    assert.equal(isOurs({ labels: { 'chaperone.dev/revision': 'r1' } }, 'r1'), false);
    assert.equal(isOurs(undefined, undefined), false);
  });
});
