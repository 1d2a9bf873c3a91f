import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import type { MutatingWebhook } from '../admission/webhook-configuration.ts';
import { namespaceSelector, WEBHOOK_NAME } from '../admission/webhook-configuration.ts';
import { INJECT_LABEL, INJECTOR_CONFIG_ANNOTATION, REVISION_LABEL } from '../names.ts';
import { checkInject, configFrom } from './check-inject.ts';

const dir = mkdtempSync(join(tmpdir(), 'check-inject-'));
const ctx = { version: '0.1.0', env: { HOME: dir } };

describe('check-inject (offline, from manifests)', () => {
  const file = join(dir, 'all.yaml');
  writeFileSync(
    file,
    [
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: agents}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}',
      'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}',
      'apiVersion: v1\nkind: Pod\nmetadata: {name: bad, annotations: {chaperone.dev/log-level: loud}}\nspec: {containers: [{name: a, image: x}]}',
    ].join('\n---\n'),
  );

  it('explains each pod-bearing document and skips the rest', async () => {
    const { text, reports } = await checkInject({ filename: file, output: 'text', offline: true }, ctx);
    assert.equal(reports.length, 2);
    assert.match(text, /^agents\/Deployment\/web: would be injected/m);
    assert.match(
      text,
      /^default\/Pod\/bad: would be rejected: chaperone\.dev\/log-level: "loud" must be one of/m,
    );
    assert.match(text, /note: skipping a document: Service has no pod template/);
    assert.match(text, /note: offline: using the default injection settings/);
  });

  it('prints the injected manifest as YAML, as the workload it came from', async () => {
    const { text } = await checkInject(
      { filename: file, output: 'yaml', offline: true, namespace: 'ignored' },
      ctx,
    );
    const [deployment] = YAML.parseAllDocuments(text).map(
      (d) => d.toJS() as { kind: string; spec: { template: { spec: { containers: { name: string }[] } } } },
    );
    assert.equal(deployment?.kind, 'Deployment');
    assert.deepEqual(
      deployment?.spec.template.spec.containers.map((c) => c.name),
      ['chaperone-sidecar', 'web'],
    );
  });

  it('reports JSON', async () => {
    const { text } = await checkInject({ filename: file, output: 'json', offline: true }, ctx);
    const reports = JSON.parse(text) as { verdict: string }[];
    assert.deepEqual(
      reports.map((r) => r.verdict),
      ['would-be-injected', 'would-be-rejected'],
    );
  });

  it('needs exactly one of a pod or a manifest', async () => {
    await assert.rejects(checkInject({ output: 'text', offline: true }, ctx), /name a pod/);
    await assert.rejects(
      checkInject({ target: 'a/b', filename: file, output: 'text', offline: true }, ctx),
      /name a pod/,
    );
    await assert.rejects(
      checkInject({ target: 'a/b', output: 'text', offline: true }, ctx),
      /needs a cluster/,
    );
  });
});

describe('check-inject: whose settings judge a live pod', () => {
  const hook = (revision: string) => ({
    name: WEBHOOK_NAME,
    admissionReviewVersions: ['v1'],
    clientConfig: { url: 'https://127.0.0.1:1/inject' },
    rules: [],
    namespaceSelector: namespaceSelector(revision, []),
  });
  const configuration = (name: string, revision: string, image: string) => ({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: {
      name,
      annotations: {
        [INJECTOR_CONFIG_ANNOTATION]: JSON.stringify({ image, kubePort: 6443, excludedNamespaces: [] }),
      },
    },
    webhooks: [hook(revision)] as unknown as MutatingWebhook[],
  });
  const other = configuration('chaperone-injector-rother', 'other', 'example/other:1');
  const mine = configuration('chaperone-injector-rmine', 'mine', 'example/mine:1');

  it('takes the settings of the configuration that selects the namespace, not the first listed', () => {
    const labels = { [INJECT_LABEL]: 'enabled', [REVISION_LABEL]: 'mine' };
    const { config, note } = configFrom([other, mine], '0.1.0', labels);
    assert.equal(config.image, 'example/mine:1');
    assert.equal(note, undefined);
  });

  it('falls back to the defaults, saying so, when the configuration selecting it publishes no settings', () => {
    const bare = { ...mine, metadata: { name: 'chaperone-injector-rmine' } };
    const labels = { [INJECT_LABEL]: 'enabled', [REVISION_LABEL]: 'mine' };
    const { config, note } = configFrom([other, bare], '0.1.0', labels);
    assert.notEqual(
      config.image,
      'example/other:1',
      'not the settings of an injector that does not answer here',
    );
    assert.match(note ?? '', /not published/);
  });

  it('takes any published settings, without a note, for a namespace no configuration selects', () => {
    const labels = { [INJECT_LABEL]: 'enabled', [REVISION_LABEL]: 'nobody' };
    const { config, note } = configFrom([other, mine], '0.1.0', labels);
    assert.equal(config.image, 'example/other:1');
    assert.equal(note, undefined);
  });
});
