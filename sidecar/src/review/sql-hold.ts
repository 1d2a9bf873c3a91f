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
 */
import { DEFAULT_REVIEW, type Decision, type SqlMask } from '@chaperone/shared';
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
