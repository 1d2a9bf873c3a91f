import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeApiError, type KubeClient } from './kube-client.ts';
import { TEST_CONFIG, TEST_WEBHOOK_SETTINGS } from './test-support.ts';
import {
  desiredValidatingWebhookConfiguration,
  desiredWebhookConfiguration,
  type MutatingWebhook,
  type MutatingWebhookConfiguration,
  reconcileWebhookConfiguration,
} from './webhook-configuration.ts';

const SETTINGS = TEST_WEBHOOK_SETTINGS;

describe('desiredWebhookConfiguration', () => {
  const w = desiredWebhookConfiguration(SETTINGS, 'PEM');
  const hook = w.webhooks?.[0];
  it('is scoped, fails closed, has no side effects and may be reinvoked', () => {
    assert.equal(hook?.name, 'inject.chaperone.dev');
    assert.equal(hook?.failurePolicy, 'Fail');
    assert.equal(hook?.sideEffects, 'None');
    assert.equal(hook?.reinvocationPolicy, 'IfNeeded');
    assert.equal(hook?.timeoutSeconds, 5);
    assert.deepEqual(hook?.admissionReviewVersions, ['v1']);
    assert.deepEqual(hook?.rules, [
      {
        operations: ['CREATE'],
        apiGroups: [''],
        apiVersions: ['v1'],
        resources: ['pods'],
        scope: 'Namespaced',
      },
    ]);
    assert.deepEqual(hook?.objectSelector, {
      matchExpressions: [{ key: 'chaperone.dev/inject', operator: 'NotIn', values: ['false'] }],
    });
  });
  it('reaches the Service, or a URL', () => {
    assert.deepEqual(hook?.clientConfig, {
      service: { namespace: 'chaperone-system', name: 'chaperone-injector', path: '/mutate', port: 443 },
      caBundle: Buffer.from('PEM').toString('base64'),
    });
    const byUrl = desiredWebhookConfiguration(
      { ...SETTINGS, url: 'https://127.0.0.1:8443/mutate' },
      undefined,
    );
    assert.deepEqual(byUrl.webhooks?.[0]?.clientConfig, { url: 'https://127.0.0.1:8443/mutate' });
  });
  it('publishes the injection settings for check-inject', () => {
    assert.deepEqual(
      JSON.parse(w.metadata.annotations?.['chaperone.dev/injection-config'] ?? ''),
      TEST_CONFIG,
    );
  });
});

describe('desiredValidatingWebhookConfiguration', () => {
  const v = desiredValidatingWebhookConfiguration(SETTINGS, 'PEM');
  const [pods, namespaces] = v.webhooks ?? [];
  const selected = desiredWebhookConfiguration(SETTINGS, 'PEM').webhooks?.[0]?.namespaceSelector;
  it('has the same name, labels and failure handling as the mutating one', () => {
    assert.equal(v.kind, 'ValidatingWebhookConfiguration');
    assert.equal(v.metadata.name, 'chaperone-injector');
    assert.equal(v.metadata.labels?.['app.kubernetes.io/managed-by'], 'chaperone-injector');
    for (const hook of [pods, namespaces]) {
      assert.equal(hook?.failurePolicy, 'Fail');
      assert.equal(hook?.sideEffects, 'None');
      assert.equal(hook?.matchPolicy, 'Equivalent');
      assert.equal(hook?.timeoutSeconds, 5);
      assert.equal(hook?.reinvocationPolicy, undefined, 'validating webhooks are not reinvoked');
      assert.deepEqual(hook?.clientConfig, {
        service: { namespace: 'chaperone-system', name: 'chaperone-injector', path: '/validate', port: 443 },
        caBundle: Buffer.from('PEM').toString('base64'),
      });
    }
  });
  it('sees every pod of an opted-in namespace: no objectSelector, so opt-out labels are seen', () => {
    assert.equal(pods?.name, 'validate.chaperone.dev');
    assert.deepEqual(pods?.namespaceSelector, selected);
    assert.deepEqual(pods?.objectSelector, {});
    assert.deepEqual(pods?.rules, [
      {
        operations: ['CREATE', 'UPDATE'],
        apiGroups: [''],
        apiVersions: ['v1'],
        resources: ['pods', 'pods/status', 'pods/ephemeralcontainers'],
        scope: 'Namespaced',
      },
    ]);
  });
  it('sees updates of opted-in namespaces through an objectSelector (old or new labels)', () => {
    assert.equal(namespaces?.name, 'namespace.chaperone.dev');
    assert.deepEqual(namespaces?.namespaceSelector, {});
    assert.deepEqual(namespaces?.objectSelector, selected);
    assert.deepEqual(namespaces?.rules, [
      {
        operations: ['UPDATE'],
        apiGroups: [''],
        apiVersions: ['v1'],
        resources: ['namespaces', 'namespaces/status', 'namespaces/finalize'],
        scope: 'Cluster',
      },
    ]);
  });
  it('reaches a URL when the webhooks are reached by URL', () => {
    const byUrl = desiredValidatingWebhookConfiguration(
      { ...SETTINGS, url: 'https://127.0.0.1:8443/mutate', validateUrl: 'https://127.0.0.1:8443/validate' },
      undefined,
    );
    for (const hook of byUrl.webhooks ?? [])
      assert.deepEqual(hook.clientConfig, { url: 'https://127.0.0.1:8443/validate' });
  });
  it('is created and repaired like the mutating one', async () => {
    const { client, state } = fakeClient();
    assert.equal(await reconcileWebhookConfiguration(client, v, true), 'created');
    assert.equal(state.paths[0], '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations');
    (state.stored?.webhooks?.[0] as MutatingWebhook).objectSelector = {
      matchExpressions: [{ key: 'chaperone.dev/inject', operator: 'NotIn', values: ['false'] }],
    };
    assert.equal(await reconcileWebhookConfiguration(client, v, true), 'repaired');
    assert.deepEqual(state.stored?.webhooks, v.webhooks);
    assert.equal(await reconcileWebhookConfiguration(client, v, true), 'unchanged');
  });
});

function fakeClient(initial?: MutatingWebhookConfiguration) {
  const state = {
    stored: initial ? structuredClone(initial) : undefined,
    writes: 0,
    paths: [] as string[],
  };
  const client = {
    async get() {
      return state.stored ? structuredClone(state.stored) : undefined;
    },
    async create(_p: string, body: MutatingWebhookConfiguration) {
      state.paths.push(_p);
      if (state.stored) throw new KubeApiError('POST', _p, 409, {});
      state.stored = structuredClone(body);
      state.writes++;
      return body;
    },
    async replace(_p: string, body: MutatingWebhookConfiguration) {
      state.stored = structuredClone(body);
      state.writes++;
      return body;
    },
  } as unknown as KubeClient;
  return { client, state };
}

describe('reconcileWebhookConfiguration', () => {
  it('creates, then leaves a matching configuration alone (whatever its key order)', async () => {
    const desired = desiredWebhookConfiguration(SETTINGS, 'PEM');
    const { client, state } = fakeClient();
    assert.equal(await reconcileWebhookConfiguration(client, desired, true), 'created');
    // The API server returns keys in its own order and adds metadata.
    const stored = state.stored as MutatingWebhookConfiguration;
    state.stored = JSON.parse(
      JSON.stringify({ ...stored, metadata: { ...stored.metadata, uid: 'u', resourceVersion: '1' } }),
    ) as MutatingWebhookConfiguration;
    const hook = state.stored.webhooks?.[0] as unknown as Record<string, unknown>;
    state.stored.webhooks = [Object.fromEntries(Object.entries(hook).reverse()) as never];
    assert.equal(await reconcileWebhookConfiguration(client, desired, true), 'unchanged');
    assert.equal(state.writes, 1);
  });

  it('repairs drift: failure policy, selectors, caBundle, extra webhooks', async () => {
    const desired = desiredWebhookConfiguration(SETTINGS, 'PEM');
    const first = (w: MutatingWebhookConfiguration): MutatingWebhook => w.webhooks?.[0] as MutatingWebhook;
    for (const mutate of [
      (w: MutatingWebhookConfiguration) => {
        first(w).failurePolicy = 'Ignore';
      },
      (w: MutatingWebhookConfiguration) => {
        first(w).namespaceSelector = {};
      },
      (w: MutatingWebhookConfiguration) => {
        delete first(w).clientConfig.caBundle;
      },
      (w: MutatingWebhookConfiguration) => {
        w.webhooks?.push({
          ...first(w),
          name: 'other.example.com',
        });
      },
    ]) {
      const drifted = structuredClone(desired);
      mutate(drifted);
      const { client, state } = fakeClient(drifted);
      assert.equal(await reconcileWebhookConfiguration(client, desired, true), 'repaired');
      assert.deepEqual(state.stored?.webhooks, desired.webhooks);
    }
  });

  it('leaves caBundle to someone else (cert-manager) when not managing it', async () => {
    const desired = desiredWebhookConfiguration(SETTINGS, undefined);
    const injected = structuredClone(desired);
    const hook = (injected.webhooks ?? [])[0] as MutatingWebhook;
    hook.clientConfig.caBundle = 'by-cainjector';
    const { client } = fakeClient(injected);
    assert.equal(await reconcileWebhookConfiguration(client, desired, false), 'unchanged');
  });
});
