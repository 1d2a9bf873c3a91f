/**
 * Test helpers other packages' tests and benchmarks use: the storage
 * conformance suite, sample chained events and the reference ingest client.
 */

export {
  type ApprovalStoreHarness,
  approvalStoreConformance,
} from '../store/approval-store-conformance.ts';
export { type StoreHarness, storeConformance } from '../store/store-conformance.ts';
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
export { deterministicUuid, type EventSpec, makeChain, sampleEvent } from './test-events.ts';
export { LOOPBACK_LISTENERS, type PodClaims, TestIssuer } from './test-harness.ts';
