import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { counter, createRegistry, histogram, labelChildren, serveMetrics } from './metrics.ts';

describe('metrics', () => {
  it('serves prefixed default and custom metrics on their own port', async () => {
    const registry = createRegistry({ component: 'test' });
    const c = counter(registry, { name: 'chaperone_test_total', help: 'test', labelNames: ['rule'] });
    histogram(registry, { name: 'chaperone_test_seconds', help: 'test' }).observe(0.0003);
    c.inc({ rule: 'deny-delete' });
    const srv = await serveMetrics(registry);
    try {
      const res = await fetch(srv.url);
      assert.equal(res.status, 200);
      const body = await res.text();
      assert.match(body, /chaperone_test_total\{rule="deny-delete",component="test"\} 1/);
      assert.match(body, /chaperone_process_cpu_seconds_total/);
      assert.match(body, /chaperone_test_seconds_bucket\{le="0.0005",component="test"\} 1/);
      assert.equal((await fetch(srv.url.replace('/metrics', '/nope'))).status, 404);
    } finally {
      await srv.close();
    }
  });

  it('labelChildren resolves each key once, keeps at most max, and still answers past it', async () => {
    const registry = createRegistry({ component: 'test', defaultMetrics: false });
    const c = counter(registry, {
      name: 'chaperone_test_children_total',
      help: 'h',
      labelNames: ['k'] as const,
    });
    const children = labelChildren<{ inc(): void }>(2);
    let resolved = 0;
    const child = (k: string) =>
      children(k, () => {
        resolved++;
        return c.labels({ k });
      });
    for (const k of ['a', 'a', 'b', 'a', 'c', 'c']) child(k).inc();
    assert.equal(resolved, 4, 'a and b kept; c past the bound resolved each time');
    const text = await registry.metrics();
    assert.match(text, /chaperone_test_children_total\{k="a",component="test"\} 3/);
    assert.match(text, /chaperone_test_children_total\{k="c",component="test"\} 2/);
  });
  it('refuses metric names without the prefix', () => {
    const registry = createRegistry({ component: 'test', defaultMetrics: false });
    assert.throws(
      () => counter(registry, { name: 'requests_total', help: 'x' }),
      /must start with chaperone_/,
    );
  });
});
