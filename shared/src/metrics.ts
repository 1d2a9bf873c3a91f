/**
 * One prom-client registry per process, created in `main`. Default process
 * metrics and every metric created through these helpers carry the
 * `chaperone_` prefix. Keep label values bounded: rule names, reasons,
 * protocols, verbs, never pod names or SQL text.
 */
/// <reference path="./prom-client-lib.d.ts" />
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
// One file each instead of prom-client's index (see prom-client-lib.d.ts).
import Counter from 'prom-client/lib/counter.js';
import Gauge from 'prom-client/lib/gauge.js';
import Histogram from 'prom-client/lib/histogram.js';
import Registry from 'prom-client/lib/registry.js';
import { ChaperoneError } from './errors.ts';
import { registerProcessMetrics } from './process-metrics.ts';

export type { Counter, Gauge, Histogram, Registry };

export const METRIC_PREFIX = 'chaperone_';

export interface RegistryOptions {
  /** Added as a `component` label to every metric. */
  component: string;
  /** Default process metrics (CPU, memory, event loop); on unless disabled. */
  defaultMetrics?: boolean;
}

export function createRegistry(opts: RegistryOptions): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component: opts.component });
  if (opts.defaultMetrics !== false) registerProcessMetrics(registry, METRIC_PREFIX);
  return registry;
}

function checkName(name: string): void {
  if (!name.startsWith(METRIC_PREFIX)) {
    throw new ChaperoneError('internal', `metric ${name} must start with ${METRIC_PREFIX}`);
  }
}

interface MetricSpec<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

export function counter<L extends string>(registry: Registry, spec: MetricSpec<L>): Counter<L> {
  checkName(spec.name);
  return new Counter({ ...spec, labelNames: spec.labelNames ?? [], registers: [registry] });
}

export function gauge<L extends string>(
  registry: Registry,
  spec: MetricSpec<L> & { collect?: (this: Gauge<L>) => void | Promise<void> },
): Gauge<L> {
  checkName(spec.name);
  return new Gauge({ ...spec, labelNames: spec.labelNames ?? [], registers: [registry] });
}

/** Buckets in seconds from 50 µs to 10 s: proxy overhead lives at the low end. */
export const LATENCY_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];

export function histogram<L extends string>(
  registry: Registry,
  spec: MetricSpec<L> & { buckets?: number[] },
): Histogram<L> {
  checkName(spec.name);
  return new Histogram({
    ...spec,
    labelNames: spec.labelNames ?? [],
    buckets: spec.buckets ?? LATENCY_BUCKETS,
    registers: [registry],
  });
}

export interface MetricsServer {
  readonly server: Server;
  readonly url: string;
  close(): Promise<void>;
}

/** Serves `GET /metrics` (and `/healthz`) on its own port, apart from proxied traffic. */
export async function serveMetrics(registry: Registry, host = '127.0.0.1', port = 0): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(body);
        },
        (err: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`metrics collection failed: ${(err as Error).message}\n`);
        },
      );
    } else if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server,
    url: `http://${shownHost}:${addr.port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
