export { type ChainConflict, Shipper, type ShipperOptions } from './audit/shipper.ts';
export { readSpoolDir, Spool, spoolRecord } from './audit/spool.ts';
export { register } from './cli.ts';
export { type SidecarConfig, sidecarSchema } from './config.ts';
export { type RunningSidecar, runSidecar } from './main.ts';
export { type SidecarMetrics, sidecarMetrics } from './metrics.ts';
