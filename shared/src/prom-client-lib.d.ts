/**
 * Types for the prom-client files metrics.ts imports one by one. prom-client's
 * index also loads its cluster aggregator (node:cluster, node:dgram) and its
 * Pushgateway client (node:https, node:zlib), which Chaperone never uses;
 * each of these files exports one value as `module.exports`, typed here by
 * the package's own declarations (value and type both).
 */
declare module 'prom-client/lib/registry.js' {
  export { Registry as default } from 'prom-client';
}
declare module 'prom-client/lib/counter.js' {
  export { Counter as default } from 'prom-client';
}
declare module 'prom-client/lib/gauge.js' {
  export { Gauge as default } from 'prom-client';
}
declare module 'prom-client/lib/histogram.js' {
  export { Histogram as default } from 'prom-client';
}
/** Only the tests use it: to hold registerProcessMetrics to prom-client's default metric names. */
declare module 'prom-client/lib/defaultMetrics.js' {
  export { collectDefaultMetrics as default } from 'prom-client';
}
/** prom-client's default process metrics, one module each: `(registry, config) => void`. */
declare module 'prom-client/lib/metrics/*.js' {
  const register: (
    registry: import('prom-client').Registry,
    config: { readonly prefix?: string; readonly labels?: Readonly<Record<string, string>> },
  ) => void;
  export default register;
}
