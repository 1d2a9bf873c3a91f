import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { agentEnvironment, STRIPPED_NAMES } from './agent-env.ts';

describe('the agent environment', () => {
  const user = {
    PATH: '/usr/bin',
    HOME: '/home/me',
    ANTHROPIC_API_KEY: 'the-agent-needs-this',
    KUBECONFIG: '/home/me/.kube/config',
    AWS_SECRET_ACCESS_KEY: 'aws-secret',
    PGPASSWORD: 'pg-secret',
    CHAPERONE_LOG_LEVEL: 'debug',
    SOME_COPY: 'prefix-upstream-token-value-suffix',
    UNSET: undefined,
  };

  it('keeps the agent’s own settings, removes credentials by name and by value, and says which', () => {
    const { env, stripped } = agentEnvironment(user, {
      kubeconfig: '/state/session/kubeconfig',
      secrets: ['upstream-token-value', 'short'],
    });
    assert.equal(env.PATH, '/usr/bin');
    assert.equal(env.ANTHROPIC_API_KEY, 'the-agent-needs-this');
    assert.equal(env.KUBECONFIG, '/state/session/kubeconfig');
    assert.equal(env.AWS_SECRET_ACCESS_KEY, undefined);
    assert.equal(env.PGPASSWORD, undefined);
    assert.equal(env.SOME_COPY, undefined);
    assert.equal(env.CHAPERONE_LOG_LEVEL, undefined);
    assert.deepEqual(stripped, [
      'KUBECONFIG',
      'AWS_SECRET_ACCESS_KEY',
      'PGPASSWORD',
      'CHAPERONE_LOG_LEVEL',
      'SOME_COPY',
    ]);
    assert.ok(!Object.values(env).some((v) => v.includes('/home/me/.kube')));
  });

  it('removes the variables Helm reads its own API server and bearer token from', () => {
    const { env, stripped } = agentEnvironment(
      { HELM_KUBETOKEN: 'helm-bearer-token', HELM_KUBEAPISERVER: 'https://api', HELM_DRIVER: 'secret' },
      { kubeconfig: '/k' },
    );
    assert.deepEqual(stripped, ['HELM_KUBETOKEN', 'HELM_KUBEAPISERVER']);
    assert.equal(env.HELM_DRIVER, 'secret');
  });

  it('points libpq at the guarded database', () => {
    const { env } = agentEnvironment(
      { PGHOST: 'db.internal', PGPASSWORD: 'x' },
      {
        kubeconfig: '/k',
        database: { host: '127.0.0.1', port: 40001, sslrootcert: '/ca.crt', dbname: 'shop', user: 'app' },
      },
    );
    assert.deepEqual(
      [env.PGHOST, env.PGPORT, env.PGDATABASE, env.PGUSER, env.PGPASSWORD],
      ['127.0.0.1', '40001', 'shop', 'app', undefined],
    );
  });

  it('lists each name once', () => {
    assert.equal(new Set(STRIPPED_NAMES).size, STRIPPED_NAMES.length);
  });
});
