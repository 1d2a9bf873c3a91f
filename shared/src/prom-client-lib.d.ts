/**
 * Types for the prom-client files metrics.ts imports one by one. prom-client's
 * index also loads its cluster aggregator (node:cluster, node:dgram) and its
 * Pushgateway client (node:https, node:zlib), which Chaperone never uses;
 * each of these files exports one value as `module.exports`, typed here by
 * the package's own declarations.
 */
declare module 'prom-client/lib/registry.js' {
  const value: typeof import('prom-client').Registry;
  export default value;
}
declare module 'prom-client/lib/counter.js' {
  const value: typeof import('prom-client').Counter;
  export default value;
}
declare module 'prom-client/lib/gauge.js' {
  const value: typeof import('prom-client').Gauge;
  export default value;
}
declare module 'prom-client/lib/histogram.js' {
  const value: typeof import('prom-client').Histogram;
  export default value;
}
declare module 'prom-client/lib/defaultMetrics.js' {
  const value: typeof import('prom-client').collectDefaultMetrics;
  export default value;
}
