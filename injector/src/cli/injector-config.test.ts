import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '@chaperone/shared';
import { injectionConfigFrom, injectorSchema, instanceName } from './injector-config.ts';
import {
  checkSettings,
  exemptionsFrom,
  networkPolicySettings,
  servingNames,
  validatingWebhookUrl,
} from './injector-runtime.ts';

const schema = injectorSchema('0.1.0');

describe('injector settings', () => {
  it('defaults to a working, fail-closed setup', () => {
    const s = parseConfig(schema, { env: {} });
    assert.equal(s.port, 8443);
    assert.equal(s.image, 'ghcr.io/chaperone-dev/chaperone:0.1.0');
    assert.equal(s.webhookTimeoutSeconds, 5);
    const c = injectionConfigFrom(s, '0.1.0', false);
    assert.equal(c.mode, 'classic');
    assert.deepEqual(c.allowedImages, ['ghcr.io/chaperone-dev/chaperone']);
    assert.deepEqual(c.excludedNamespaces, [
      'kube-system',
      'kube-public',
      'kube-node-lease',
      'chaperone-system',
    ]);
    assert.equal(injectionConfigFrom(s, '0.1.0', true).mode, 'native');
    assert.equal(c.tokenExpirationSeconds, 3600);
  });
  it('reads flags and CHAPERONE_* variables, and rejects typos', () => {
    const s = parseConfig(schema, {
      env: { CHAPERONE_SIDECAR_MODE: 'classic', CHAPERONE_REVISION: 'canary' },
      flags: ['--cpu-request', '0.25', '--excluded-namespaces', 'infra,ops'],
    });
    const c = injectionConfigFrom(s, '0.1.0', true);
    assert.equal(c.mode, 'classic');
    assert.equal(c.resources.cpuRequest, '250m');
    assert.ok(c.excludedNamespaces.includes('ops'));
    assert.equal(instanceName(s), 'chaperone-injector-canary');
    assert.throws(
      () => parseConfig(schema, { env: { CHAPERONE_SIDECAR_MOD: 'x' } }),
      /did you mean CHAPERONE_SIDECAR_MODE/,
    );
    assert.throws(() => parseConfig(schema, { flags: ['--cpu-request', 'lots'] }), /--cpu-request/);
  });
  it('names the serving certificate after the Service and the webhook URL', () => {
    const s = parseConfig(schema, {
      flags: ['--webhook-url', 'https://127.0.0.1:9443/mutate', '--namespace', 'sys'],
    });
    const n = servingNames(s);
    assert.ok(n.dnsNames.includes('chaperone-injector.sys.svc'));
    assert.deepEqual(n.ipAddresses, ['127.0.0.1']);
  });
  it('derives the collector egress rule from the collector URL', () => {
    const svc = networkPolicySettings(
      parseConfig(schema, {
        flags: [
          '--collector-url',
          'https://chaperone-collector.observability.svc:443',
          '--collector-port',
          '8443',
        ],
      }),
    );
    assert.deepEqual(svc.collector, {
      namespace: 'observability',
      podSelector: { 'app.kubernetes.io/name': 'chaperone-collector' },
      port: 8443,
    });
    const ip = networkPolicySettings(
      parseConfig(schema, { flags: ['--collector-url', 'https://10.1.2.3:9443'] }),
    );
    assert.deepEqual(ip.collector, { cidr: '10.1.2.3/32', port: 9443 });
    assert.throws(
      () => networkPolicySettings(parseConfig(schema, { flags: ['--egress-upstreams', 'db:5432'] })),
      /NetworkPolicy settings/,
    );
  });
  it('exempts nobody by default, and checks exemptions at start', () => {
    const s = parseConfig(schema, { env: {} });
    assert.deepEqual(exemptionsFrom(s), { users: [], groups: [] });
    assert.equal(s.validatingWebhookPath, '/validate');
    const set = parseConfig(schema, {
      env: { CHAPERONE_EXEMPT_GROUPS: 'platform-admins' },
      flags: ['--exempt-users', 'alice,ops@example.com'],
    });
    assert.deepEqual(exemptionsFrom(set), {
      users: ['alice', 'ops@example.com'],
      groups: ['platform-admins'],
    });
    checkSettings(set);
    assert.throws(
      () => checkSettings(parseConfig(schema, { flags: ['--exempt-groups', 'system:serviceaccounts'] })),
      /--exempt-groups: "system:serviceaccounts" cannot be exempted/,
    );
    assert.throws(
      () => checkSettings(parseConfig(schema, { flags: ['--validating-webhook-path', '/mutate'] })),
      /must differ from --webhook-path/,
    );
  });
  it('reaches the validating webhook at the mutating URL’s host with its own path', () => {
    const s = parseConfig(schema, { flags: ['--webhook-url', 'https://127.0.0.1:9443/mutate'] });
    assert.equal(validatingWebhookUrl(s), 'https://127.0.0.1:9443/validate');
    assert.equal(validatingWebhookUrl(parseConfig(schema, { env: {} })), undefined);
    assert.throws(
      () =>
        checkSettings(parseConfig(schema, { flags: ['--webhook-url', 'https://127.0.0.1:9443/validate'] })),
      /give the mutating webhook's URL/,
    );
  });

  // Fails when sidecars are told to mount a CA for a collector they reach without TLS (or none).
  it('hands sidecars the collector CA only for a collector reached over TLS', () => {
    const flags = (...f: string[]) =>
      parseConfig(schema, { flags: ['--collector-ca-file', '/ca.crt', ...f] });
    const tls = flags('--collector-url', 'https://collector.example:443');
    checkSettings(tls);
    assert.equal(injectionConfigFrom(tls, '0.1.0', false).collectorCa, true);
    assert.throws(
      () => checkSettings(flags()),
      /--collector-ca-file is for a collector reached over TLS: --collector-url is not set/,
    );
    assert.throws(
      () => checkSettings(flags('--collector-url', 'http://collector:80')),
      /is http:\/\/collector:80/,
    );
    assert.equal(
      injectionConfigFrom(parseConfig(schema, { env: {} }), '0.1.0', false).collectorCa,
      undefined,
    );
  });
});
