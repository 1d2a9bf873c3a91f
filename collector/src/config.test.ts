import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '@chaperone/shared';
import { COLLECTOR_SCHEMA, checkCollectorConfig, inClusterApiServer, queryRbacEnabled } from './config.ts';

const parse = (flags: Record<string, string | boolean>) => parseConfig(COLLECTOR_SCHEMA, { flags });

describe('collector configuration', () => {
  it('accepts the in-cluster defaults with TLS and a query token', () => {
    const c = parse({
      kubeApiServer: 'https://10.0.0.1:443',
      tlsCertFile: '/c',
      tlsKeyFile: '/k',
      queryTokenFile: '/t',
    });
    assert.doesNotThrow(() => checkCollectorConfig(c));
    assert.equal(c.storage, 'embedded');
    assert.equal(c.retention, 90 * 86_400_000);
  });

  it('lists every inconsistent combination at once', () => {
    const c = parse({ storage: 'postgres', queryAuth: 'oidc', tlsCertFile: '/c', listenHost: '0.0.0.0' });
    assert.throws(
      () => checkCollectorConfig(c),
      (err: Error) => {
        for (const m of [
          /--postgres-url/,
          /--tls-key-file/,
          /--oidc-issuer/,
          /--kube-api-server/,
          /--storage postgres needs --checkpoint-key-file/,
        ])
          assert.match(err.message, m);
        return true;
      },
    );
  });

  it('PostgreSQL takes one checkpoint key for every replica, or an explicit --without-checkpoints', () => {
    const base = {
      kubeApiServer: 'https://10.0.0.1',
      queryToken: 'x'.repeat(16),
      listenHost: '127.0.0.1',
      storage: 'postgres',
      postgresUrl: 'postgresql://db/audit',
    };
    assert.throws(() => checkCollectorConfig(parse(base)), /needs --checkpoint-key-file/);
    assert.doesNotThrow(() => checkCollectorConfig(parse({ ...base, checkpointKeyFile: '/k' })));
    assert.doesNotThrow(() => checkCollectorConfig(parse({ ...base, withoutCheckpoints: true })));
    assert.throws(
      () => checkCollectorConfig(parse({ ...base, withoutCheckpoints: true, checkpointKeyFile: '/k' })),
      /contradict each other/,
    );
  });

  it('refuses plain HTTP off loopback unless told it is intended', () => {
    const base = { kubeApiServer: 'https://10.0.0.1', queryToken: 'x'.repeat(16) };
    assert.throws(() => checkCollectorConfig(parse(base)), /without TLS/);
    assert.doesNotThrow(() => checkCollectorConfig(parse({ ...base, listenHost: '127.0.0.1' })));
    assert.doesNotThrow(() => checkCollectorConfig(parse({ ...base, allowInsecure: true })));
  });

  // Fails if portClashes() is dropped from checkCollectorConfig: tried.
  it('gives ingest, the query API and metrics a port each', () => {
    const base = { kubeApiServer: 'https://10.0.0.1', queryToken: 'x'.repeat(16), listenHost: '127.0.0.1' };
    const c = parse(base);
    assert.deepEqual([c.listenPort, c.queryListenPort, c.metricsPort], [8443, 8444, 9090]);
    assert.throws(
      () => checkCollectorConfig(parse({ ...base, queryListenPort: '8443' })),
      /--listen-port and --query-listen-port are both 8443/,
    );
    assert.throws(
      () => checkCollectorConfig(parse({ ...base, queryListenPort: '9090' })),
      /--query-listen-port and --metrics-port are both 9090/,
    );
    assert.doesNotThrow(() =>
      checkCollectorConfig(parse({ ...base, listenPort: '0', queryListenPort: '0', metricsPort: '0' })),
    );
    // The query API off loopback without TLS is refused like ingest is.
    assert.throws(
      () => checkCollectorConfig(parse({ ...base, queryListenHost: '0.0.0.0' })),
      /query API on 0\.0\.0\.0 without TLS/,
    );
    assert.throws(
      () => checkCollectorConfig(parse({ ...base, queryTokensFile: '/f' })),
      /only one of --query-token, --query-token-file and --query-tokens-file/,
    );
  });

  it('needs no cluster access when keys come from a public issuer URL', () => {
    const c = parse({
      jwksUrl: 'https://oidc.example/keys',
      listenHost: '127.0.0.1',
      queryToken: 'x'.repeat(16),
    });
    assert.doesNotThrow(() => checkCollectorConfig(c));
  });

  // Fails if RBAC readers are on without the API server, off by default with it, or `on` starts without it: tried.
  it('reads with RBAC when the collector talks to the API server, unless turned off; `on` insists', () => {
    const local = { listenHost: '127.0.0.1', queryToken: 'x'.repeat(16) };
    const cluster = { ...local, kubeApiServer: 'https://10.0.0.1' };
    const inCluster = parse(cluster);
    assert.equal(inCluster.queryRbac, 'auto');
    assert.equal(inCluster.queryRbacCache, 10_000);
    assert.equal(queryRbacEnabled(inCluster), true);
    assert.equal(queryRbacEnabled(parse({ ...cluster, queryRbac: 'off' })), false);
    const publicKeys = { ...local, jwksUrl: 'https://oidc.example/keys' };
    assert.equal(queryRbacEnabled(parse(publicKeys)), false);
    assert.throws(
      () => checkCollectorConfig(parse({ ...publicKeys, queryRbac: 'on' })),
      /--query-rbac on needs the API server/,
    );
    assert.doesNotThrow(() => checkCollectorConfig(parse({ ...cluster, queryRbac: 'on' })));
    assert.equal(parse({ ...local, queryRbacCache: '0s' }).queryRbacCache, 0);
  });

  it('derives the in-cluster API server from the service environment', () => {
    assert.equal(
      inClusterApiServer({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' }),
      'https://10.0.0.1:443',
    );
    assert.equal(
      inClusterApiServer({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }),
      'https://[fd00::1]:443',
    );
    assert.equal(inClusterApiServer({}), undefined);
  });
});
