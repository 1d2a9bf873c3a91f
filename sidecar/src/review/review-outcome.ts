/**
 * How a hold ended, in the words the agent reads and in the record its audit
 * event keeps (`decision.approval`). Pure.
 *
 * Only `approved` lets the action through; every other state is a denial
 * whose message says who denied it and why, that nobody decided in time, or
 * what kept the approval service from deciding.
 */
import type { ApproverDecision, DecisionRecord, ReviewOptions } from '@chaperone/shared';

export type ReviewState = NonNullable<DecisionRecord['approval']>['state'];

export interface ReviewOutcome {
  readonly state: ReviewState;
  /** The collector's id of the approval request, once it had one. */
  readonly approvalId?: string;
  /** Every approver's decision, in order. */
  readonly decisions: readonly ApproverDecision[];
  /** The grant that let the action through without a new review, or the one its approval opened. */
  readonly grantId?: string;
  readonly grantUntil?: string;
  /** An earlier approval's grant covered the action: no human was asked this time. */
  readonly granted: boolean;
  /** For the agent: why the action is denied, or who approved it. */
  readonly message: string;
  /** The audit event's `decision.approval`. */
  readonly record: NonNullable<DecisionRecord['approval']>;
}

/** What was held, for the messages. */
export interface HeldFor {
  readonly rule: string;
  readonly message: string;
  readonly review: ReviewOptions;
  /** What is held, for the agent's message: `request`, `session`, `statement`. */
  readonly noun: string;
}

/** `why` of an outcome when the sidecar has no collector to ask. */
export const NOT_CONFIGURED = 'no approval service is configured for this sidecar';

type ApprovalRecord = ReviewOutcome['record'];

/** Within what an audit event's `decision.approval` takes (audit-event.ts). */
function bounded(r: ApprovalRecord): ApprovalRecord {
  const cut = (t: string, max: number) => (t.length <= max ? t : `${t.slice(0, max - 1)}…`);
  return {
    ...r,
    ...(r.by !== undefined ? { by: cut(r.by, 4096) } : {}),
    ...(r.reason !== undefined ? { reason: cut(r.reason, 1024) } : {}),
  };
}

/** `90s`, `5m`, `1h30m`: a duration as a policy writes it. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  let s = Math.round(ms / 1000);
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  if (s > 0 || parts.length === 0) parts.push(`${s}s`);
  return parts.join('');
}

/** A review's settings in one line (`chaperone policy test`). */
export function reviewSummary(r: ReviewOptions): string {
  const who = r.approvers.length > 0 ? r.approvers.join(', ') : 'anyone RBAC lets approve';
  const grant =
    r.grantMs > 0 ? `an approval lets the same action pass for ${formatDuration(r.grantMs)}` : 'no grant';
  return `review: ${r.approvals} approval${r.approvals === 1 ? '' : 's'} from ${who}, within ${formatDuration(r.timeoutMs)}; ${grant}`;
}

function needs(h: HeldFor): string {
  return `rule "${h.rule}" requires a human's approval (${h.message})`;
}

function who(ds: readonly ApproverDecision[], kind: ApproverDecision['decision']): ApproverDecision[] {
  return ds.filter((d) => d.decision === kind);
}

function said(d: ApproverDecision): string {
  return d.reason ? `${d.user} ("${d.reason}")` : d.user;
}

/** The collector's final word: approved, denied or expired. */
export function decidedOutcome(
  h: HeldFor,
  m: {
    approvalId: string;
    state: 'approved' | 'denied' | 'expired';
    decisions: readonly ApproverDecision[];
    grantId?: string;
    grantUntil?: string;
  },
  granted: boolean,
  now: Date,
): ReviewOutcome {
  const base = {
    approvalId: m.approvalId,
    decisions: m.decisions,
    granted,
    ...(m.grantId ? { grantId: m.grantId } : {}),
    ...(m.grantUntil ? { grantUntil: m.grantUntil } : {}),
  };
  const last = m.decisions.at(-1);
  const at = last?.at ?? now.toISOString();
  if (m.state === 'approved') {
    const approvers = who(m.decisions, 'approve');
    const by = approvers.map((d) => d.user).join(', ');
    const message = granted
      ? `allowed by rule "${h.rule}" under grant ${m.grantId ?? '?'}${m.grantUntil ? ` (until ${m.grantUntil})` : ''}, opened by an earlier approval of the same action`
      : `approved by ${approvers.map(said).join(', ') || 'the approval service'} (approval ${m.approvalId}, rule "${h.rule}")${m.grantId ? `; the same action passes until ${m.grantUntil ?? 'the grant ends'} (grant ${m.grantId})` : ''}`;
    const reasons = approvers.flatMap((d) => (d.reason ? [d.reason] : []));
    return {
      ...base,
      state: 'approved',
      message,
      record: bounded({
        state: 'approved',
        id: m.approvalId,
        ...(by ? { by } : {}),
        at,
        ...(granted
          ? { reason: `covered by grant ${m.grantId ?? '?'}` }
          : reasons.length
            ? { reason: reasons.join('; ') }
            : {}),
        ...(m.grantId ? { grantId: m.grantId } : {}),
      }),
    };
  }
  if (m.state === 'denied') {
    const deniers = who(m.decisions, 'deny');
    const by = deniers.map((d) => d.user).join(', ');
    const reasons = deniers.flatMap((d) => (d.reason ? [d.reason] : []));
    return {
      ...base,
      state: 'denied',
      message: `${needs(h)}: denied by ${deniers.map(said).join(', ') || 'an approver'} (approval ${m.approvalId}); the ${h.noun} is denied`,
      record: bounded({
        state: 'denied',
        id: m.approvalId,
        ...(by ? { by } : {}),
        at,
        ...(reasons.length ? { reason: reasons.join('; ') } : {}),
      }),
    };
  }
  return expiredOutcome(h, now, m.approvalId, m.decisions);
}

/** Nobody decided within the rule's timeout (the collector said so, or the sidecar's own timer ran out). */
export function expiredOutcome(
  h: HeldFor,
  now: Date,
  approvalId?: string,
  decisions: readonly ApproverDecision[] = [],
): ReviewOutcome {
  const got = who(decisions, 'approve').length;
  const short = got > 0 ? ` (${got} of the ${h.review.approvals} approvals it needs were given)` : '';
  const reason = `nobody decided within ${formatDuration(h.review.timeoutMs)}${short}`;
  return {
    state: 'expired',
    ...(approvalId ? { approvalId } : {}),
    decisions,
    granted: false,
    message: `${needs(h)}: ${reason}${approvalId ? ` (approval ${approvalId})` : ''}; the ${h.noun} is denied (ask an approver, then retry)`,
    record: bounded({
      state: 'expired',
      ...(approvalId ? { id: approvalId } : {}),
      at: now.toISOString(),
      reason,
    }),
  };
}

/** No decision could be had: fail closed, saying exactly why. */
export function unavailableOutcome(h: HeldFor, why: string, now: Date, approvalId?: string): ReviewOutcome {
  return {
    state: 'unavailable',
    ...(approvalId ? { approvalId } : {}),
    decisions: [],
    granted: false,
    message:
      why === NOT_CONFIGURED
        ? `${needs(h)}, and ${why}; the ${h.noun} is denied`
        : `${needs(h)}, and no decision could be obtained: ${why}${approvalId ? ` (approval ${approvalId})` : ''}; the ${h.noun} is denied`,
    record: bounded({
      state: 'unavailable',
      ...(approvalId ? { id: approvalId } : {}),
      at: now.toISOString(),
      reason: why,
    }),
  };
}
