import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TEST_CONFIG, TEST_WEBHOOK_SETTINGS } from '../test-support.ts';
import {
  desiredValidatingWebhookConfiguration,
  desiredWebhookConfiguration,
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
});
