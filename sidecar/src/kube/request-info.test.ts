import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { impersonationHeaders, parseRequestInfo, toAction } from './request-info.ts';

function info(method: string, url: string) {
  const u = new URL(url, 'https://x');
  return parseRequestInfo(method, u.pathname, u.searchParams);
}

// [method, url, expected subset]
const table: [string, string, Record<string, unknown>][] = [
  [
    'GET',
    '/api/v1/namespaces/agents/pods',
    { verb: 'list', apiGroup: '', apiVersion: 'v1', namespace: 'agents', resource: 'pods' },
  ],
  ['GET', '/api/v1/namespaces/agents/pods/web-0', { verb: 'get', resource: 'pods', name: 'web-0' }],
  [
    'GET',
    '/api/v1/namespaces/agents/pods?watch=true&resourceVersion=10',
    { verb: 'watch', resource: 'pods' },
  ],
  ['GET', '/api/v1/namespaces/agents/secrets?watch=1', { verb: 'watch', resource: 'secrets' }],
  [
    'GET',
    '/api/v1/watch/namespaces/agents/secrets',
    { verb: 'watch', resource: 'secrets', namespace: 'agents' },
  ],
  [
    'GET',
    '/api/v1/namespaces/agents/secrets?fieldSelector=metadata.name%3Ddb',
    { verb: 'list', resource: 'secrets', name: 'db' },
  ],
  [
    'GET',
    '/api/v1/namespaces/agents/secrets?fieldSelector=metadata.name%3Ddb&watch=true',
    { verb: 'watch', name: 'db' },
  ],
  ['POST', '/api/v1/namespaces/agents/configmaps', { verb: 'create', resource: 'configmaps' }],
  [
    'PUT',
    '/api/v1/namespaces/agents/configmaps/chaperone-policy',
    { verb: 'update', name: 'chaperone-policy' },
  ],
  [
    'PATCH',
    '/apis/apps/v1/namespaces/agents/deployments/web/scale',
    {
      verb: 'patch',
      apiGroup: 'apps',
      apiVersion: 'v1',
      resource: 'deployments',
      name: 'web',
      subresource: 'scale',
    },
  ],
  ['DELETE', '/api/v1/namespaces/agents/pods/web-0', { verb: 'delete', name: 'web-0' }],
  ['DELETE', '/api/v1/namespaces/agents/pods', { verb: 'deletecollection', resource: 'pods' }],
  [
    'DELETE',
    '/api/v1/namespaces/agents',
    { verb: 'delete', resource: 'namespaces', name: 'agents', namespace: 'agents' },
  ],
  ['GET', '/api/v1/namespaces', { verb: 'list', resource: 'namespaces' }],
  [
    'PUT',
    '/api/v1/namespaces/agents/finalize',
    { verb: 'update', resource: 'namespaces', name: 'agents', subresource: 'finalize' },
  ],
  [
    'PUT',
    '/api/v1/namespaces/agents/status',
    { verb: 'update', resource: 'namespaces', name: 'agents', subresource: 'status' },
  ],
  ['GET', '/api/v1/nodes/n1', { verb: 'get', resource: 'nodes', name: 'n1' }],
  [
    'GET',
    '/apis/rbac.authorization.k8s.io/v1/clusterroles',
    { verb: 'list', apiGroup: 'rbac.authorization.k8s.io', resource: 'clusterroles' },
  ],
  [
    'DELETE',
    '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/chaperone',
    { verb: 'delete', resource: 'mutatingwebhookconfigurations', name: 'chaperone' },
  ],
  [
    'PATCH',
    '/api/v1/namespaces/agents/pods/a/ephemeralcontainers',
    { verb: 'patch', subresource: 'ephemeralcontainers' },
  ],
  ['GET', '/api/v1/namespaces/agents/pods/a/log?follow=true', { verb: 'get', subresource: 'log' }],
  [
    'GET',
    '/api/v1/namespaces/agents/services/web:80/proxy/metrics',
    { verb: 'get', resource: 'services', name: 'web:80', subresource: 'proxy' },
  ],
  ['GET', '/api/v1/namespaces/agents/pods/my%20pod', { name: 'my pod' }],
  ['GET', '/api/v1/namespaces/agents/pods/', { verb: 'list', resource: 'pods' }],
  // Non-resource requests.
  ['GET', '/api', { isResourceRequest: false, path: '/api', verb: 'get' }],
  ['GET', '/api/v1', { isResourceRequest: false, path: '/api/v1' }],
  ['GET', '/apis', { isResourceRequest: false, path: '/apis' }],
  ['GET', '/apis/apps/v1', { isResourceRequest: false, path: '/apis/apps/v1' }],
  ['GET', '/version', { isResourceRequest: false, path: '/version' }],
  ['GET', '/openapi/v2', { isResourceRequest: false, path: '/openapi/v2' }],
  ['GET', '/healthz/etcd', { isResourceRequest: false, path: '/healthz/etcd' }],
  ['GET', '/', { isResourceRequest: false, path: '/' }],
  [
    'POST',
    '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
    { verb: 'create', resource: 'selfsubjectaccessreviews' },
  ],
];

describe('parseRequestInfo', () => {
  for (const [method, url, expected] of table) {
    it(`${method} ${url}`, () => {
      const got = info(method, url) as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(expected))
        assert.deepEqual(got[k], v, `${k} of ${method} ${url}: ${JSON.stringify(got)}`);
      if (expected.isResourceRequest === undefined) assert.equal(got.isResourceRequest, true);
    });
  }

  it('reads exec, attach and port-forward targets from the query', () => {
    const exec = info(
      'GET',
      '/api/v1/namespaces/a/pods/p/exec?command=sh&command=-c&command=rm%20-rf%20%2F&container=app&stdin=true&tty=true',
    );
    assert.deepEqual(exec.exec, { kind: 'exec', argv: ['sh', '-c', 'rm -rf /'], container: 'app' });
    assert.equal(exec.subresource, 'exec');
    const attach = info('POST', '/api/v1/namespaces/a/pods/p/attach?container=chaperone-sidecar');
    assert.deepEqual(attach.exec, { kind: 'attach', argv: [], container: 'chaperone-sidecar' });
    const pf = info('GET', '/api/v1/namespaces/a/pods/p/portforward?ports=8080&ports=9090,9091');
    assert.deepEqual(pf.exec, { kind: 'portforward', argv: [], ports: [8080, 9090, 9091] });
  });

  it('turns request info into actions: exec sessions become the exec protocol with verb create', () => {
    const a = toAction(info('GET', '/api/v1/namespaces/a/pods/p/exec?command=ls'), {
      user: 'system:serviceaccount:a:agent',
    });
    assert.equal(a.protocol, 'exec');
    assert.equal(a.verb, 'create');
    assert.deepEqual(a.exec?.argv, ['ls']);
    assert.equal(a.user, 'system:serviceaccount:a:agent');
    const nr = toAction(info('GET', '/version'), {});
    assert.deepEqual(nr, { protocol: 'kubernetes', verb: 'get', nonResourceURL: '/version' });
    const imp = toAction(info('GET', '/api/v1/pods'), { impersonation: ['Impersonate-User'] });
    assert.deepEqual(imp.impersonation, ['Impersonate-User']);
  });

  it('finds impersonation headers in any case', () => {
    assert.deepEqual(
      impersonationHeaders({
        'impersonate-user': 'x',
        'Impersonate-Extra-Scopes': 'y',
        accept: 'z',
        'impersonate-uid': 'u',
      }),
      ['impersonate-user', 'Impersonate-Extra-Scopes', 'impersonate-uid'],
    );
  });
});
