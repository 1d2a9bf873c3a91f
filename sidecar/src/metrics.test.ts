import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRegistry } from '@chaperone/shared';
import { sidecarMetrics } from './metrics.ts';

describe('sidecar metrics', () => {
  it('report the spool as it is when scraped, not as it was at the last tick', async () => {
    const registry = createRegistry({ component: 'sidecar', defaultMetrics: false });
    const metrics = sidecarMetrics(registry, { namespace: 'agents' });
    const spool = { depth: 0, unackedBytes: 0, oldestUnackedAt: undefined as number | undefined };
    metrics.watchSpool(spool);
    assert.match(await registry.metrics(), /^chaperone_spool_events\{[^}]*\} 0$/m);
    spool.depth = 2;
    spool.unackedBytes = 2900;
    spool.oldestUnackedAt = Date.now() - 5000;
    const text = await registry.metrics();
    assert.match(text, /^chaperone_spool_events\{[^}]*\} 2$/m);
    assert.match(text, /^chaperone_spool_unacked_bytes\{[^}]*\} 2900$/m);
    const age = Number(/^chaperone_spool_oldest_unacked_seconds\{[^}]*\} (\S+)$/m.exec(text)?.[1]);
    assert.ok(age >= 5 && age < 60, String(age));
  });

  it("count blocked requests and masked values under the sidecar's own namespace", async () => {
    const registry = createRegistry({ component: 'sidecar', defaultMetrics: false });
    const metrics = sidecarMetrics(registry, { namespace: 'agents' });
    metrics.blocked.inc({ protocol: 'postgres', rule: 'no-drop' });
    metrics.maskedFields.inc({ protocol: 'kubernetes', rule: 'secrets' }, 3);
    const text = await registry.metrics();
    assert.match(
      text,
      /^chaperone_blocked_total\{namespace="agents",protocol="postgres",rule="no-drop",component="sidecar"\} 1$/m,
    );
    assert.match(
      text,
      /^chaperone_masked_fields_total\{namespace="agents",protocol="kubernetes",rule="secrets",component="sidecar"\} 3$/m,
    );
  });
});
