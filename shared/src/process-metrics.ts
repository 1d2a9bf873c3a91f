/**
 * The metrics every Chaperone process exports about itself: prom-client's
 * default process and Node.js metrics (CPU, memory, file descriptors,
 * handles, heap spaces, GC, version), file by file, except its event-loop
 * module, which is replaced here.
 *
 * prom-client samples the event loop's delay every 10 ms, which woke every
 * process a hundred times a second, idle or not (an idle sidecar spent ~7 ms
 * of CPU per second on it; bench/src/sidecar-footprint.ts measures idle cost).
 * Here it is sampled once a second, and what is exported is the delay beyond
 * the sampling period (Node's histogram records the whole time between two
 * samples, so prom-client's figures never go below its 10 ms period). A scrape
 * that comes before a new sample keeps the previous values instead of
 * reporting an empty window.
 *
 * The CPU counters are written here too: prom-client's file for them loads
 * @opentelemetry/api (for exemplars, which Chaperone does not use) into every
 * process, ~45 kB of source kept in each sidecar's heap.
 */
/// <reference path="./prom-client-lib.d.ts" />
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Counter from 'prom-client/lib/counter.js';
import Gauge from 'prom-client/lib/gauge.js';
import gc from 'prom-client/lib/metrics/gc.js';
import heapSizeAndUsed from 'prom-client/lib/metrics/heapSizeAndUsed.js';
import heapSpacesSizeAndUsed from 'prom-client/lib/metrics/heapSpacesSizeAndUsed.js';
import osMemoryHeap from 'prom-client/lib/metrics/osMemoryHeap.js';
import processHandles from 'prom-client/lib/metrics/processHandles.js';
import processMaxFileDescriptors from 'prom-client/lib/metrics/processMaxFileDescriptors.js';
import processOpenFileDescriptors from 'prom-client/lib/metrics/processOpenFileDescriptors.js';
import processRequests from 'prom-client/lib/metrics/processRequests.js';
import processResources from 'prom-client/lib/metrics/processResources.js';
import processStartTime from 'prom-client/lib/metrics/processStartTime.js';
import version from 'prom-client/lib/metrics/version.js';
import type Registry from 'prom-client/lib/registry.js';

/** How often the event loop's delay is sampled (ms). */
export const EVENT_LOOP_SAMPLE_MS = 1000;

const PROM_CLIENT_DEFAULTS = [
  processStartTime,
  osMemoryHeap,
  processOpenFileDescriptors,
  processMaxFileDescriptors,
  processResources,
  processHandles,
  processRequests,
  heapSizeAndUsed,
  heapSpacesSizeAndUsed,
  version,
  gc,
];

export function registerProcessMetrics(
  registry: Registry,
  prefix: string,
  sampleMs = EVENT_LOOP_SAMPLE_MS,
): void {
  registerCpu(registry, prefix);
  for (const register of PROM_CLIENT_DEFAULTS) register(registry, { prefix });
  registerEventLoopLag(registry, prefix, sampleMs);
}

/**
 * `<prefix>process_cpu_user_seconds_total`, `…_system_…` and
 * `<prefix>process_cpu_seconds_total`: the process's CPU time since it started
 * (process.cpuUsage()), as Prometheus's own process collectors count it.
 */
function registerCpu(registry: Registry, prefix: string): void {
  let last = { user: 0, system: 0 };
  // Registered first: the registry collects in order, and this counter's collect adds to all three.
  const user: Counter = new Counter({
    name: `${prefix}process_cpu_user_seconds_total`,
    help: 'Total user CPU time spent in seconds.',
    registers: [registry],
    collect() {
      const now = process.cpuUsage();
      const userS = Math.max(0, now.user - last.user) / 1e6;
      const systemS = Math.max(0, now.system - last.system) / 1e6;
      last = now;
      user.inc(userS);
      system.inc(systemS);
      total.inc(userS + systemS);
    },
  });
  const system = new Counter({
    name: `${prefix}process_cpu_system_seconds_total`,
    help: 'Total system CPU time spent in seconds.',
    registers: [registry],
  });
  const total = new Counter({
    name: `${prefix}process_cpu_seconds_total`,
    help: 'Total user and system CPU time spent in seconds.',
    registers: [registry],
  });
}

/** `<prefix>nodejs_eventloop_lag_seconds` and its `_min`, `_max`, `_mean`, `_stddev`, `_p50`, `_p90`, `_p99`. */
function registerEventLoopLag(registry: Registry, prefix: string, sampleMs: number): void {
  const delays = monitorEventLoopDelay({ resolution: sampleMs });
  delays.enable();
  const periodNs = sampleMs * 1e6;
  /** Seconds beyond the sampling period. */
  const late = (ns: number) => Math.max(0, ns - periodNs) / 1e9;
  // Registered first: the registry collects in order, and this gauge's collect sets the others.
  const lag: Gauge = new Gauge({
    name: `${prefix}nodejs_eventloop_lag_seconds`,
    help: 'How long a callback queued at the previous scrape waited for the event loop, in seconds.',
    registers: [registry],
    collect() {
      const queued = process.hrtime.bigint();
      setImmediate(() => lag.set(Number(process.hrtime.bigint() - queued) / 1e9));
      // No sample since the last scrape (they come once per period): keep the last values.
      if (delays.count === 0) return;
      min.set(late(delays.min));
      max.set(late(delays.max));
      mean.set(late(delays.mean));
      stddev.set(delays.stddev / 1e9);
      p50.set(late(delays.percentile(50)));
      p90.set(late(delays.percentile(90)));
      p99.set(late(delays.percentile(99)));
      delays.reset();
    },
  });
  const gauge = (suffix: string, what: string) =>
    new Gauge({
      name: `${prefix}nodejs_eventloop_lag_${suffix}_seconds`,
      help: `${what} of the event loop's delays since the last scrape, beyond its sampling period.`,
      registers: [registry],
    });
  const min = gauge('min', 'The smallest');
  const max = gauge('max', 'The largest');
  const mean = gauge('mean', 'The mean');
  const stddev = gauge('stddev', 'The standard deviation');
  const p50 = gauge('p50', 'The 50th percentile');
  const p90 = gauge('p90', 'The 90th percentile');
  const p99 = gauge('p99', 'The 99th percentile');
}
