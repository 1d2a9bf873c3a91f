import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import collectDefaultMetrics from 'prom-client/lib/defaultMetrics.js';
import Registry from 'prom-client/lib/registry.js';
import { registerProcessMetrics } from './process-metrics.ts';

async function values(registry: Registry): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const m of await registry.getMetricsAsJSON()) out.set(m.name, m.values[0]?.value ?? Number.NaN);
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('process metrics', () => {
  it("exports every metric prom-client's defaults do, under the same names", async () => {
    const ours = new Registry();
    registerProcessMetrics(ours, 'x_');
    const theirs = new Registry();
    collectDefaultMetrics({ register: theirs, prefix: 'x_' });
    const names = async (r: Registry) => (await r.getMetricsAsJSON()).map((m) => m.name).sort();
    assert.deepEqual(await names(ours), await names(theirs));
  });

  it('reports a stall beyond the sampling period, and keeps the last values when no sample came since', async () => {
    const registry = new Registry();
    registerProcessMetrics(registry, 'x_', 100);
    await sleep(250);
    await values(registry);
    // A scrape starts a new window, whose first sample only marks the time: let it come.
    await sleep(150);
    // Block the event loop for 400 ms: the sample due during it comes ~300 ms late.
    const until = Date.now() + 400;
    while (Date.now() < until) {
      // busy
    }
    await sleep(250);
    const after = await values(registry);
    const max = after.get('x_nodejs_eventloop_lag_max_seconds') ?? Number.NaN;
    assert.ok(max >= 0.25, `the stall shows in the largest delay (${max} s)`);
    const min = after.get('x_nodejs_eventloop_lag_min_seconds') ?? Number.NaN;
    assert.ok(min < 0.1, `the 100 ms sampling period itself is not counted as delay (smallest ${min} s)`);
    // A scrape right after, before the next sample: the same values, not an empty window.
    const again = await values(registry);
    assert.equal(again.get('x_nodejs_eventloop_lag_max_seconds'), max);
    assert.ok(Number.isFinite(again.get('x_nodejs_eventloop_lag_mean_seconds')));
  });
});
