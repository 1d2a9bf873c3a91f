import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeApiError, type KubeClient } from '@chaperone/shared/kube';
import {
  desiredValidatingWebhookConfiguration,
  desiredWebhookConfiguration,
  type MutatingWebhook,
  type MutatingWebhookConfiguration,
} from '../admission/webhook-configuration.ts';
import { TEST_WEBHOOK_SETTINGS } from '../test-support.ts';
import { reconcileWebhookConfiguration } from './webhook-controller.ts';

const SETTINGS = TEST_WEBHOOK_SETTINGS;

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

  it('creates and repairs the validating configuration like the mutating one', async () => {
    const v = desiredValidatingWebhookConfiguration(SETTINGS, 'PEM');
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
