/**
 * Test helpers other packages' tests and benchmarks use: the storage
 * conformance suite, sample chained events and the reference ingest client.
 */

export {
  ClosedError,
  type Connection,
  connectIngest,
  ingestUrl,
  MessageQueue,
  NackError,
  type StreamResult,
  streamEvents,
} from './ingest-client.ts';
export { type StoreHarness, storeConformance } from './store-conformance.ts';
export { deterministicUuid, type EventSpec, makeChain, sampleEvent } from './test-events.ts';
export { type PodClaims, TestIssuer } from './test-harness.ts';
