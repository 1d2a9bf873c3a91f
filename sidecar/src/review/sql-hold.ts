/**
 * Holds one SQL statement a `review` rule matched until a human decides
 * (the PostgreSQL session waits with the client's later messages; the
 * client waits for the statement's result). What the approver reads is the
 * statement normalised (literals replaced by $n) and its database, and
 * for a hold at a Bind its parameters (bind-params.ts); the digest pins the
 * exact text and values, so an approval or grant covers nothing else.
 *
 * The decision returned keeps the rule and records how the hold ended
 * (`approval`): approved, the statement runs as an allowed one would (with
 * the database's masks, `masks`, in force); otherwise its message is what
 * the client's ErrorResponse says (SQLSTATE 42501).
 *
 * An approved statement is judged again with the policy in force once the
 * hold ended (`judgedAgain`, as a Kubernetes request is: after-approval.ts),
 * since the policy may have changed while a human was deciding.
 */
import { DEFAULT_REVIEW, type Decision, type SqlMask } from '@chaperone/shared';
import { afterApproval } from './after-approval.ts';
import { sqlHeld } from './held-action.ts';
import type { ReviewClient } from './review-client.ts';

export async function reviewStatement(
  reviews: ReviewClient,
  s: {
    readonly auditId: string;
    readonly kind: string;
    /** The statement normalised. */
    readonly text: string;
    readonly database: string;
    /** The action digest of the statement's exact text (and a Bind's values). */
    readonly digest: string;
    /** A Bind's parameters as bind-params.ts describes them (a hold at Bind). */
    readonly params?: readonly string[];
    readonly decision: Decision;
    readonly masks: readonly SqlMask[];
  },
  signal: AbortSignal,
): Promise<Decision> {
  const d = s.decision;
  const outcome = await reviews.review(
    {
      ...sqlHeld({
        kind: s.kind,
        normalized: s.text,
        database: s.database,
        digest: s.digest,
        ...(s.params ? { params: s.params } : {}),
      }),
      auditId: s.auditId,
      rule: d.rule,
      message: d.message,
      review: d.review ?? DEFAULT_REVIEW,
      noun: 'statement',
    },
    signal,
  );
  if (outcome.state === 'approved')
    return { ...d, approval: outcome.record, ...(s.masks.length > 0 ? { sqlMasks: s.masks } : {}) };
  return { ...d, message: outcome.message, approval: outcome.record };
}

/**
 * What an approved statement runs (or is refused) under, given `now`, the
 * policy's decision on it once its hold ended. Still this rule's review: the
 * approval stands (nobody is asked twice), with the database's masks in force
 * now. An allow or mask: that decision, the approval recorded on it. A deny
 * or another rule's review: refused, the message saying the approval was
 * overtaken and by which rule (what the client reads and the event records,
 * with the approval, as the Kubernetes path records it). A statement that was
 * not approved is returned as it is.
 */
export function judgedAgain(held: Decision, now: Decision, masks: readonly SqlMask[]): Decision {
  const approval = held.approval;
  if (approval?.state !== 'approved') return held;
  const after = afterApproval(held, now);
  if (after === undefined) {
    const { sqlMasks: _, ...stands } = held;
    return masks.length > 0 ? { ...stands, sqlMasks: masks } : stands;
  }
  if (after.decision.action === 'allow' || after.decision.action === 'mask')
    return { ...after.decision, approval };
  return { ...after.decision, message: after.message, approval };
}
