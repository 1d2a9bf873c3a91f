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

  it("counts the process's CPU time since it started, user and system adding up to the total", async () => {
    const registry = new Registry();
    const before = process.cpuUsage();
    registerProcessMetrics(registry, 'x_');
    const first = await values(registry);
    const user = first.get('x_process_cpu_user_seconds_total') ?? Number.NaN;
    const system = first.get('x_process_cpu_system_seconds_total') ?? Number.NaN;
    // What this process used before the metrics were registered counts too.
    assert.ok(user >= before.user / 1e6, `user ${user} s, ${before.user / 1e6} s used before registering`);
    assert.ok(system >= before.system / 1e6, `system ${system} s`);
    assert.ok(Math.abs((first.get('x_process_cpu_seconds_total') ?? 0) - (user + system)) < 1e-9);
    const until = process.cpuUsage().user + 50_000;
    while (process.cpuUsage().user < until) {
      // busy: 50 ms of user CPU
    }
    const second = await values(registry);
    const more = (second.get('x_process_cpu_user_seconds_total') ?? 0) - user;
    assert.ok(more >= 0.05, `the busy loop's 50 ms show (${more} s more)`);
  });
});
