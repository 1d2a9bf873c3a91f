/** Test helpers other packages' tests use (not part of the sidecar). */
export { type HeldConnection, TEST_TOKEN, TestApprovalServer } from './review/test-approval-server.ts';
