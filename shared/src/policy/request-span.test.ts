import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pathTreeMatcher } from './glob.ts';
import { coveredNamespace, isClusterScopedResource, spansNames, spansNamespaces } from './request-span.ts';
import type { Action } from './types.ts';

const k = (a: Partial<Action>): Action => ({ protocol: 'kubernetes', verb: 'list', apiGroup: '', ...a });

describe('request span', () => {
  it('knows built-in cluster-scoped resources by group', () => {
    assert.equal(isClusterScopedResource('', 'nodes'), true);
    assert.equal(isClusterScopedResource(undefined, 'namespaces'), true);
    assert.equal(isClusterScopedResource('rbac.authorization.k8s.io', 'clusterroles'), true);
    assert.equal(isClusterScopedResource('', 'clusterroles'), false);
    assert.equal(isClusterScopedResource('example.com', 'nodes'), false);
    assert.equal(isClusterScopedResource('', 'configmaps'), false);
  });

  it('a collection request without a namespace spans namespaces, unless cluster-scoped', () => {
    for (const verb of ['list', 'watch', 'deletecollection']) {
      assert.equal(spansNamespaces(k({ verb, resource: 'configmaps' })), true, verb);
      assert.equal(spansNamespaces(k({ verb, resource: 'configmaps', name: 'x' })), true, verb);
      assert.equal(spansNamespaces(k({ verb, resource: 'configmaps', namespace: 'a' })), false, verb);
      assert.equal(spansNamespaces(k({ verb, resource: 'nodes' })), false, verb);
    }
    for (const verb of ['get', 'create', 'patch', 'delete', 'update']) {
      assert.equal(spansNamespaces(k({ verb, resource: 'configmaps' })), false, verb);
    }
    assert.equal(spansNamespaces(k({ nonResourceURL: '/api' })), false);
  });

  it('Namespace objects are each in their own namespace', () => {
    assert.equal(spansNamespaces(k({ resource: 'namespaces' })), true);
    assert.equal(spansNamespaces(k({ verb: 'watch', resource: 'namespaces', name: 'a' })), false);
    assert.equal(coveredNamespace(k({ verb: 'watch', resource: 'namespaces', name: 'a' })), 'a');
    assert.equal(coveredNamespace(k({ verb: 'watch', resource: 'pods', name: 'a' })), undefined);
    assert.equal(spansNamespaces(k({ apiGroup: 'example.com', resource: 'namespaces' })), true);
  });

  it('a collection request without a name spans names', () => {
    assert.equal(spansNames(k({ resource: 'services', namespace: 'a' })), true);
    assert.equal(spansNames(k({ verb: 'deletecollection', resource: 'nodes' })), true);
    assert.equal(spansNames(k({ resource: 'services', namespace: 'a', name: 'api' })), false);
    assert.equal(spansNames(k({ verb: 'create', resource: 'services', namespace: 'a' })), false);
  });

  it('a path glob without * covers its trailing / and the paths below it', () => {
    const m = pathTreeMatcher(['/logs', '/debug/pprof/', '/metrics*', '/', '/v?']);
    for (const p of [
      '/logs',
      '/logs/',
      '/logs/a/b',
      '/debug/pprof',
      '/debug/pprof/heap',
      '/metricsx',
      '/',
      '/v2/x',
    ]) {
      assert.equal(m(p), true, p);
    }
    for (const p of ['/logsx', '/debug', '/version', '/healthz', '/v22', undefined]) {
      assert.equal(m(p), false, String(p));
    }
  });
});
