/**
 * An approved action judged again with the policy in force once its hold
 * ended: the policy may have changed while a human was deciding. Pure.
 */
import type { Decision } from '@chaperone/shared';

/**
 * After an approval, the action judged again with the policy in force now:
 * undefined when it is still this rule's review (the approval stands);
 * otherwise the new decision, which the action follows (an allow or mask
 * goes on, a deny or another rule's review is refused) and why.
 */
export function afterApproval(
  held: Decision,
  now: Decision,
): { decision: Decision; message: string } | undefined {
  if (now.action === 'review' && now.rule === held.rule) return undefined;
  if (now.action === 'allow' || now.action === 'mask') return { decision: now, message: '' };
  const what =
    now.action === 'deny'
      ? `the policy changed while it was held and rule "${now.rule}" now denies it: ${now.message}`
      : `the policy changed while it was held and rule "${now.rule}" now requires an approval of its own (${now.message}); send it again to have it reviewed`;
  return {
    decision: now.action === 'deny' ? now : { ...now, action: 'deny' },
    message: `rule "${held.rule}" approved it, but ${what}`,
  };
}
