import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { counter, createRegistry, histogram, serveMetrics } from './metrics.ts';

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

  it('refuses metric names without the prefix', () => {
    const registry = createRegistry({ component: 'test', defaultMetrics: false });
    assert.throws(
      () => counter(registry, { name: 'requests_total', help: 'x' }),
      /must start with chaperone_/,
    );
  });
});
