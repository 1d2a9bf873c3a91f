/**
 * What a stored approval request is, and the pure decisions both backends
 * take inside their write transaction: whether an approver's decision is
 * recorded, what state it leaves the request in, and whether it opens a
 * grant. No clock and no I/O: the caller passes the time and the new ids.
 */
import type { ApprovalState, ApprovalView, ApproverDecision, GrantView } from '@chaperone/shared';

/** A stored request: what the API shows, plus the fingerprint a grant is matched on. */
export interface ApprovalRecord extends ApprovalView {
  readonly fingerprint: string;
}

export interface GrantRecord extends GrantView {
  /** The namespace of the pod the grant covers (for authorising and listing). */
  readonly namespace: string;
}

export type DecisionPlan =
  | {
      readonly kind: 'record';
      readonly decisions: readonly ApproverDecision[];
      readonly state: ApprovalState;
      /** Set when this decision ended the request. */
      readonly decidedAt?: string;
      /** Set when this decision approved a request with a grant window. */
      readonly grant?: GrantRecord;
    }
  | { readonly kind: 'refused'; readonly code: 'conflict'; readonly message: string };

/** Distinct users who approved (the same approver twice counts once). */
export function approversSoFar(decisions: readonly ApproverDecision[]): readonly string[] {
  return [...new Set(decisions.filter((d) => d.decision === 'approve').map((d) => d.user))];
}

/**
 * Decides what `d` does to `a` at `nowMs`: a single deny ends it as denied;
 * `a.approvals` distinct approvers approve it (and open a grant of
 * `a.grantMs`, id `grantId`, when that is above 0). A request that is no
 * longer pending, or whose time is over, or a repeated decision of the same
 * approver, is refused (409).
 */
export function planDecision(
  a: ApprovalRecord,
  d: ApproverDecision,
  nowMs: number,
  grantId: string,
): DecisionPlan {
  if (a.state !== 'pending')
    return {
      kind: 'refused',
      code: 'conflict',
      message: `approval ${a.id} is ${a.state} already${a.decidedAt ? ` (since ${a.decidedAt})` : ''}: nothing more can be decided`,
    };
  if (Date.parse(a.expiresAt) <= nowMs)
    return {
      kind: 'refused',
      code: 'conflict',
      message: `approval ${a.id} expired at ${a.expiresAt}: the held action was refused`,
    };
  const earlier = a.decisions.find((x) => x.user === d.user && x.decision === d.decision);
  if (earlier)
    return {
      kind: 'refused',
      code: 'conflict',
      message: `${d.user} already decided ${d.decision} on approval ${a.id} at ${earlier.at}: each approver counts once (${a.approvals} distinct approver${a.approvals === 1 ? '' : 's'} needed)`,
    };
  const decisions = [...a.decisions, d];
  const at = new Date(nowMs).toISOString();
  if (d.decision === 'deny') return { kind: 'record', decisions, state: 'denied', decidedAt: at };
  if (approversSoFar(decisions).length < a.approvals) return { kind: 'record', decisions, state: 'pending' };
  if (a.grantMs <= 0) return { kind: 'record', decisions, state: 'approved', decidedAt: at };
  const grant: GrantRecord = {
    id: grantId,
    approvalId: a.id,
    namespace: a.requester.namespace,
    requester: a.requester,
    rule: a.rule,
    fingerprint: a.fingerprint,
    summary: a.summary,
    createdAt: at,
    until: new Date(nowMs + a.grantMs).toISOString(),
  };
  return { kind: 'record', decisions, state: 'approved', decidedAt: at, grant };
}

/** Whether a grant covers a request from `podUID` under `rule` with `fingerprint` at `nowMs`. */
export function grantCovers(
  g: GrantRecord,
  podUID: string,
  rule: string,
  fingerprint: string,
  nowMs: number,
): boolean {
  return (
    g.requester.podUID === podUID &&
    g.rule === rule &&
    g.fingerprint === fingerprint &&
    g.revokedAt === undefined &&
    Date.parse(g.until) > nowMs
  );
}
