import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mutate } from '../inject/mutate.ts';
import type { Pod } from '../k8s-types.ts';
import { TEST_CONFIG, TEST_WEBHOOK_SETTINGS } from '../test-support.ts';
import { explainInjection, formatReport } from './explain-injection.ts';
import { desiredWebhookConfiguration } from './webhook-configuration.ts';

const webhook = desiredWebhookConfiguration(TEST_WEBHOOK_SETTINGS, 'CA');
const POD: Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'agent', namespace: 'agents' },
  spec: { containers: [{ name: 'agent', image: 'x' }] },
};
const base = { namespace: 'agents', config: TEST_CONFIG, target: 'agents/agent', webhooks: [webhook] };
const optedIn = { 'chaperone.dev/inject': 'enabled' };

describe('explainInjection', () => {
  it('a manifest for an opted-in namespace would be injected, and says what changes', () => {
    const r = explainInjection({ ...base, pod: POD, live: false, namespaceLabels: optedIn });
    assert.equal(r.verdict, 'would-be-injected');
    assert.equal(r.injected?.spec.containers[0]?.name, 'chaperone-sidecar');
    const text = formatReport(r);
    assert.match(text, /^agents\/agent: would be injected\n/);
    assert.match(text, /✓ namespace agents is selected by webhook configuration chaperone-injector/);
    assert.match(text, /✓ adds the sidecar as the first container/);
  });
  it('an unlabelled namespace: names the missing label and the command', () => {
    const r = explainInjection({ ...base, pod: POD, live: true, namespaceLabels: {} });
    assert.equal(r.verdict, 'not-injected');
    assert.match(
      formatReport(r),
      /label chaperone\.dev\/inject must be "enabled" \(it is missing\) \(opt in: kubectl label namespace agents chaperone\.dev\/inject=enabled\)/,
    );
    assert.match(r.summary, /recreate the pod/);
  });
  it('no injector installed', () => {
    const r = explainInjection({ ...base, webhooks: [], pod: POD, live: false, namespaceLabels: optedIn });
    assert.equal(r.verdict, 'not-injected');
    assert.match(formatReport(r), /no Chaperone MutatingWebhookConfiguration/);
  });
  it('opt-out label and annotation', () => {
    const byLabel = explainInjection({
      ...base,
      pod: { ...POD, metadata: { labels: { 'chaperone.dev/inject': 'false' } } },
      live: false,
      namespaceLabels: optedIn,
    });
    assert.match(formatReport(byLabel), /the webhook is not called for it/);
    assert.equal(byLabel.verdict, 'would-be-rejected');
    assert.match(
      byLabel.summary,
      /would be rejected: the pod opted out by label, and namespace agents is opted in/,
    );
    assert.match(
      formatReport(byLabel),
      /validating webhook \(validate\.chaperone\.dev\) rejects a pod that is not injected/,
    );
    const byAnnotation = explainInjection({
      ...base,
      pod: { ...POD, metadata: { annotations: { 'chaperone.dev/inject': 'false' } } },
      live: false,
      namespaceLabels: optedIn,
    });
    assert.match(formatReport(byAnnotation), /skipped \(opted_out\)/);
    assert.equal(byAnnotation.verdict, 'would-be-rejected');
    assert.match(formatReport(byAnnotation), /--exempt-users/);
    const hostNetwork = explainInjection({
      ...base,
      pod: { ...POD, spec: { ...POD.spec, hostNetwork: true } },
      live: true,
      namespaceLabels: optedIn,
    });
    assert.equal(hostNetwork.verdict, 'not-injected');
    assert.match(hostNetwork.summary, /created by an identity the cluster admin exempted/);
    const elsewhere = explainInjection({
      ...base,
      pod: { ...POD, metadata: { annotations: { 'chaperone.dev/inject': 'false' } } },
      live: false,
      namespaceLabels: {},
    });
    assert.equal(elsewhere.verdict, 'not-injected', 'outside opted-in namespaces nothing is rejected');
  });
  it('an invalid override would be rejected', () => {
    const r = explainInjection({
      ...base,
      pod: { ...POD, metadata: { annotations: { 'chaperone.dev/kube-port': 'x' } } },
      live: false,
      namespaceLabels: optedIn,
    });
    assert.equal(r.verdict, 'would-be-rejected');
    assert.match(r.summary, /chaperone\.dev\/kube-port/);
  });
  it('a live injected pod is reported up to date, and custody is checked', () => {
    const injected = mutate(POD, TEST_CONFIG).pod;
    const r = explainInjection({ ...base, pod: injected, live: true, namespaceLabels: optedIn });
    assert.equal(r.verdict, 'injected');
    assert.equal(r.summary, 'injected and up to date');
    assert.match(formatReport(r), /no agent container can read a Kubernetes credential/);
  });
  it('a live pod that was not injected is explained as such', () => {
    const r = explainInjection({ ...base, pod: POD, live: true, namespaceLabels: optedIn });
    assert.equal(r.verdict, 'not-injected');
    assert.match(r.summary, /created before the namespace opted in/);
  });
  it('a missing namespace', () => {
    const r = explainInjection({ ...base, pod: POD, live: false, namespaceMissing: true });
    assert.match(r.summary, /namespace agents does not exist/);
  });
});
