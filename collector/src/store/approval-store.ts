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
  /** The pod (or its namespace) already has `pending` requests waiting, the limit. */
  | { readonly kind: 'limit'; readonly scope: 'pod' | 'namespace'; readonly pending: number };

export interface PendingLimits {
  /** Requests one pod may have waiting. */
  readonly perPod: number;
  /** Requests the pods of one namespace may have waiting, together. */
  readonly perNamespace: number;
}

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
  /**
   * Stores a new pending request, unless its pod or its namespace has as many
   * waiting as `limits` allow; `owner` is the replica holding its connection.
   */
  create(a: ApprovalRecord, limits: PendingLimits, owner?: string): Promise<CreateOutcome>;
  get(id: string): Promise<ApprovalRecord | undefined>;
  /** Newest first; when the filter asks for pending requests only, soonest expiry first. */
  list(filter: ApprovalFilter): Promise<readonly ApprovalRecord[]>;
  /** How many requests match the filter, regardless of its limit. */
  count(filter: Omit<ApprovalFilter, 'limit'>): Promise<number>;
  /** The namespaces that have requests in these states (absent: any). */
  namespaces(states?: readonly ApprovalState[]): Promise<readonly string[]>;
  /** Records an approver's decision (approval-plan.ts), in one transaction with the grant it opens. */
  decide(id: string, d: ApproverDecision, nowMs: number, grantId: string): Promise<DecideOutcome>;
  /** Ends a pending request as expired or withdrawn; undefined when it was no longer pending. */
  finish(id: string, state: 'expired' | 'withdrawn', nowMs: number): Promise<ApprovalRecord | undefined>;
  /** Ends every pending request whose time is over as expired; returns them. */
  expireDue(nowMs: number, limit: number): Promise<readonly ApprovalRecord[]>;
  /** Records that `replica` is alive at `nowMs` (its lease on the requests it owns). */
  heartbeat(replica: string, nowMs: number): Promise<void>;
  /**
   * Withdraws pending requests whose owning replica was last seen before
   * `seenBeforeMs` (or is unknown): it went away without withdrawing them.
   * Returns them.
   */
  withdrawOrphans(seenBeforeMs: number, nowMs: number, limit: number): Promise<readonly ApprovalRecord[]>;
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
