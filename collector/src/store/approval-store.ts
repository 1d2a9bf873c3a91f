/**
 * Where approval requests, approvers' decisions and grants are kept: one
 * interface, implemented by the embedded store (sqlite-approvals.ts) and by
 * PostgreSQL (postgres-approvals.ts), both checked by
 * approval-store-conformance.ts. Every change to a request is announced to
 * `onChange` listeners in every process on the same store: in-process for
 * the embedded store, PostgreSQL LISTEN/NOTIFY across replicas.
 */
import type { ApprovalState, ApproverDecision } from '@chaperone/shared';
import type { ApprovalRecord, GrantRecord } from './approval-plan.ts';

export type { ApprovalRecord, GrantRecord } from './approval-plan.ts';

export type CreateOutcome =
  | { readonly kind: 'created' }
  /** The pod already has `pending` requests waiting, the limit. */
  | { readonly kind: 'limit'; readonly pending: number };

export type DecideOutcome =
  | { readonly kind: 'recorded'; readonly approval: ApprovalRecord; readonly grant?: GrantRecord }
  | { readonly kind: 'refused'; readonly code: 'not_found' | 'conflict'; readonly message: string };

export type RevokeOutcome =
  | { readonly kind: 'revoked'; readonly grant: GrantRecord }
  | { readonly kind: 'refused'; readonly code: 'not_found' | 'conflict'; readonly message: string };

export interface ApprovalFilter {
  /** Absent: every state. */
  readonly states?: readonly ApprovalState[];
  /** Absent: every namespace. */
  readonly namespaces?: readonly string[];
  readonly limit: number;
}

export interface GrantFilter {
  readonly namespaces?: readonly string[];
  /** Only grants neither revoked nor over at this time (ms). */
  readonly activeAt?: number;
  readonly limit: number;
}

/**
 * Called with the id of a request that changed, or with undefined when
 * changes may have been missed (the PostgreSQL listener reconnected): then
 * every waiting request must be read again.
 */
export type ApprovalListener = (approvalId: string | undefined) => void;

export interface ApprovalStore {
  /** Stores a new pending request, unless its pod has `maxPendingPerPod` waiting. */
  create(a: ApprovalRecord, maxPendingPerPod: number): Promise<CreateOutcome>;
  get(id: string): Promise<ApprovalRecord | undefined>;
  /** Newest first. */
  list(filter: ApprovalFilter): Promise<readonly ApprovalRecord[]>;
  /** The namespaces that have requests in these states (absent: any). */
  namespaces(states?: readonly ApprovalState[]): Promise<readonly string[]>;
  /** Records an approver's decision (approval-plan.ts), in one transaction with the grant it opens. */
  decide(id: string, d: ApproverDecision, nowMs: number, grantId: string): Promise<DecideOutcome>;
  /** Ends a pending request as expired or withdrawn; undefined when it was no longer pending. */
  finish(id: string, state: 'expired' | 'withdrawn', nowMs: number): Promise<ApprovalRecord | undefined>;
  /** Ends every pending request whose time is over as expired; returns them. */
  expireDue(nowMs: number, limit: number): Promise<readonly ApprovalRecord[]>;
  /** An active grant covering this request, if any. */
  findGrant(
    podUID: string,
    rule: string,
    fingerprint: string,
    nowMs: number,
  ): Promise<GrantRecord | undefined>;
  getGrant(id: string): Promise<GrantRecord | undefined>;
  /** Newest first. */
  listGrants(filter: GrantFilter): Promise<readonly GrantRecord[]>;
  revokeGrant(id: string, by: string, nowMs: number): Promise<RevokeOutcome>;
  /** Deletes requests that ended, and grants that ended or were revoked, before `cutoffMs` (retention). */
  prune(cutoffMs: number): Promise<void>;
  /** Subscribes to changes; resolves, once listening, with the unsubscribe function. */
  onChange(listener: ApprovalListener): Promise<() => void>;
}
