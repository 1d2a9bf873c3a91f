// The injector's life against the real control plane: what happens while it
// is down, how it repairs its webhook configuration, and certificate rotation
// (self-managed and from files) under live traffic.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Pod } from '@chaperone/injector';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import { kubeInfo } from './environment.ts';
import {
  deleteNamespace,
  type Injector,
  optInNamespace,
  plainNamespace,
  podManifest,
  servedCertificate,
  startInjector,
  waitForServiceAccount,
  waitUntilInjecting,
  webhookCaBundle,
} from './injector-harness.ts';
import { kubectl, kubectlJson } from './kubectl.ts';
import { waitFor } from './process.ts';

const kube = kubeInfo();
const run = (args: string[], input?: string) =>
  kubectl(kube.kubeconfigPath, args, input === undefined ? {} : { input });
const containers = (namespace: string, name: string) =>
  (
    kubectlJson(kube.kubeconfigPath, ['get', 'pod', name, '-n', namespace, '-o', 'json']) as Pod
  ).spec.containers.map((c) => c.name);
const getWebhook = (inj: Injector) =>
  kubectlJson(kube.kubeconfigPath, ['get', 'mutatingwebhookconfiguration', inj.instance, '-o', 'json']) as {
    metadata: { resourceVersion: string };
    webhooks: { failurePolicy: string; clientConfig: { caBundle?: string }; namespaceSelector: unknown }[];
  };

describe('injector: stopped, restarted, repaired', () => {
  let inj: Injector;
  let ns: string;
  let plain: string;
  before(async () => {
    inj = await startInjector(kube);
    ns = optInNamespace(kube, inj, 'life');
    plain = plainNamespace(kube, 'other');
    await waitUntilInjecting(kube, ns);
    await waitForServiceAccount(kube, plain);
  });
  after(async () => {
    deleteNamespace(kube, ns);
    deleteNamespace(kube, plain);
    await inj?.cleanup();
  });

  it('with the injector stopped, refuses pods in an opted-in namespace and no others', async () => {
    await inj.kill();
    const refused = run(['create', '-n', ns, '-f', '-'], podManifest('while-down'));
    assert.notEqual(refused.code, 0, 'an agent pod must never start unguarded');
    assert.match(refused.stderr, /failed calling webhook "inject\.chaperone\.dev"/);
    assert.notEqual(run(['get', 'pod', 'while-down', '-n', ns]).code, 0);

    const elsewhere = run(['create', '-n', plain, '-f', '-'], podManifest('elsewhere'));
    assert.equal(elsewhere.code, 0, `other namespaces are unaffected: ${elsewhere.stderr}`);
    // The opt-out label keeps the mutating webhook away, but not the validating
    // one, which fails closed too: nothing unguarded starts while it is down.
    const optedOut = run(
      ['create', '-n', ns, '-f', '-'],
      podManifest('labelled-out', { labels: { 'chaperone.dev/inject': 'false' } }),
    );
    assert.notEqual(optedOut.code, 0, 'an opt-out pod is not admitted unchecked');
    assert.match(optedOut.stderr, /failed calling webhook "validate\.chaperone\.dev"/);
    assert.notEqual(run(['get', 'pod', 'labelled-out', '-n', ns]).code, 0);

    await inj.restart();
    await waitUntilInjecting(kube, ns);
    const back = run(['create', '-n', ns, '-f', '-'], podManifest('after-restart'));
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual(containers(ns, 'after-restart'), ['chaperone-sidecar', 'agent']);
  });

  it('repairs its webhook configuration when edited or deleted', async () => {
    const original = getWebhook(inj);
    let r = run([
      'patch',
      'mutatingwebhookconfiguration',
      inj.instance,
      '--type=json',
      '-p',
      JSON.stringify([
        { op: 'replace', path: '/webhooks/0/failurePolicy', value: 'Ignore' },
        {
          op: 'replace',
          path: '/webhooks/0/clientConfig/caBundle',
          value: Buffer.from('garbage').toString('base64'),
        },
      ]),
    ]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(
      async () => {
        const w = getWebhook(inj).webhooks[0];
        return (
          w?.failurePolicy === 'Fail' &&
          w.clientConfig.caBundle === original.webhooks[0]?.clientConfig.caBundle
        );
      },
      { what: 'the injector to repair its webhook configuration', timeoutMs: 20_000, intervalMs: 200 },
    );
    r = run(['delete', 'mutatingwebhookconfiguration', inj.instance]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(
      async () =>
        run(['get', 'mutatingwebhookconfiguration', inj.instance]).code === 0 &&
        getWebhook(inj).webhooks[0]?.clientConfig.caBundle === original.webhooks[0]?.clientConfig.caBundle,
      { what: 'the injector to recreate its webhook configuration', timeoutMs: 20_000, intervalMs: 200 },
    );
    await waitUntilInjecting(kube, ns);
    assert.ok(
      ((await inj.metric('chaperone_injector_webhook_configuration_actions_total{action="repaired"}')) ??
        0) >= 1,
    );
    assert.ok(
      ((await inj.metric('chaperone_injector_webhook_configuration_actions_total{action="created"}')) ?? 0) >=
        1,
    );
  });
});

describe('injector: self-managed certificate rotation', () => {
  let inj: Injector;
  let ns: string;
  before(async () => {
    // Serving certificates live 40 s and are renewed in their last 30 s: one every ~10 s.
    inj = await startInjector(kube, { args: ['--cert-validity=40s', '--cert-renew-before=30s'] });
    ns = optInNamespace(kube, inj, 'rotate');
    await waitUntilInjecting(kube, ns);
  });
  after(async () => {
    deleteNamespace(kube, ns);
    await inj?.cleanup();
  });

  it('renews the serving certificate and the webhook keeps working through each renewal', async () => {
    const first = await servedCertificate(inj.port);
    const ca = webhookCaBundle(kube, inj);
    const serials = new Set([first.serial]);
    let n = 0;
    // Two renewals, with a pod created through the API server after each.
    while (serials.size < 3) {
      const next = await waitFor(
        async () => {
          const c = await servedCertificate(inj.port);
          return serials.has(c.serial) ? undefined : c;
        },
        { what: `renewal ${serials.size} of the serving certificate`, timeoutMs: 45_000, intervalMs: 250 },
      );
      serials.add(next.serial);
      assert.equal(webhookCaBundle(kube, inj), ca, 'a renewal from the same CA leaves caBundle alone');
      const r = run(['create', '-n', ns, '-f', '-'], podManifest(`after-renewal-${n}`));
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(containers(ns, `after-renewal-${n}`), ['chaperone-sidecar', 'agent']);
      n++;
    }
    assert.ok(((await inj.metric('chaperone_injector_certificates_issued_total{kind="serving"}')) ?? 0) >= 2);
    const expiry = await inj.metric('chaperone_injector_certificate_expiry_timestamp_seconds');
    assert.ok(
      expiry !== undefined && expiry > Date.now() / 1000,
      'the expiry metric follows the served certificate',
    );
  });
});

describe('injector: certificates from files (cert-manager style)', () => {
  let inj: Injector;
  let ns: string;
  let dir: string;
  const files = () => ({ cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt') });
  const write = (ca: string, leaf: { cert: string; key: string }) => {
    // As a Secret volume update would: all files change.
    writeFileSync(files().ca, ca);
    writeFileSync(files().key, leaf.key);
    writeFileSync(files().cert, leaf.cert);
  };
  const leafFrom = (ca: { cert: string; key: string }) =>
    issueCertificate({
      ca,
      commonName: 'chaperone-injector',
      ipAddresses: ['127.0.0.1'],
      validForMs: 3_600_000,
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chaperone-injector-files-'));
    const ca = createCA({ commonName: 'files-ca-1' });
    write(ca.cert, leafFrom(ca));
    inj = await startInjector(kube, {
      args: [
        `--tls-cert-file=${files().cert}`,
        `--tls-key-file=${files().key}`,
        `--tls-ca-file=${files().ca}`,
        '--cert-reload-interval=500ms',
      ],
    });
    ns = optInNamespace(kube, inj, 'files');
    await waitUntilInjecting(kube, ns);
  });
  after(async () => {
    deleteNamespace(kube, ns);
    await inj?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('hot-reloads a replaced certificate and publishes its CA', async () => {
    const before = await servedCertificate(inj.port);
    // A new CA: first trusted alongside the old one, then the certificate moves to it.
    const ca2 = createCA({ commonName: 'files-ca-2' });
    const oldCa = webhookCaBundle(kube, inj);
    const leaf2 = leafFrom(ca2);
    write(`${ca2.cert}${oldCa}`, leaf2);
    await waitFor(async () => (await servedCertificate(inj.port)).serial !== before.serial, {
      what: 'the injector to serve the new certificate',
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    await waitFor(async () => webhookCaBundle(kube, inj).includes(ca2.cert.trim()), {
      what: 'the new CA in the webhook caBundle',
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    await waitUntilInjecting(kube, ns);
    const r = run(['create', '-n', ns, '-f', '-'], podManifest('after-file-rotation'));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(containers(ns, 'after-file-rotation'), ['chaperone-sidecar', 'agent']);
  });

  it('keeps the last good certificate when the files are broken', async () => {
    const before = await servedCertificate(inj.port);
    writeFileSync(files().key, 'not a key');
    await waitFor(
      async () =>
        inj.logs().includes('the certificate files are not usable; keeping the current certificate'),
      {
        what: 'the injector to notice the broken files',
        timeoutMs: 20_000,
        intervalMs: 200,
      },
    );
    assert.equal((await servedCertificate(inj.port)).serial, before.serial);
    const r = run(['create', '-n', ns, '-f', '-'], podManifest('still-served'));
    assert.equal(r.code, 0, r.stderr);
  });
});
