/**
 * One request as a card: the full action, a countdown to its expiry, each
 * approver's decision so far, and (while pending) approve/deny with a reason.
 */
import type { ApprovalView, DecisionBody } from '@chaperone/shared';
import { actionDetails, decisionList } from './action-details.ts';
import { api } from './api.ts';
import type { ViewContext } from './context.ts';
import { h, replace } from './dom.ts';
import { approvalProgress, formatRemaining, formatTime, hiddenCharacters, shown } from './format.ts';

export interface ApprovalCard {
  readonly el: HTMLElement;
  readonly id: string;
  /** Shows a newer state of the same request. */
  update(v: ApprovalView): void;
  /** Restarts the countdown from now. */
  tick(now: number): void;
  /** True once the request left `pending` while shown here. */
  decided(): boolean;
}

export function approvalCard(first: ApprovalView, ctx: ViewContext): ApprovalCard {
  let view = first;
  const countdown = h('span', { class: 'countdown' });
  const progress = h('span', { class: 'progress' });
  const decisions = h('div', {});
  const status = h('p', { class: 'status', role: 'status' });
  const reason = h('input', {
    type: 'text',
    name: 'reason',
    maxlength: '1024',
    placeholder: 'Reason (recorded with your decision)',
    'aria-label': 'Reason',
  });
  const approve = h('button', { type: 'button', class: 'approve' }, 'Approve');
  const deny = h('button', { type: 'button', class: 'deny' }, 'Deny');
  const decide = h('div', { class: 'decide' }, reason, approve, deny);
  const el = h(
    'article',
    { class: 'card', 'data-id': first.id },
    h('h3', {}, shown(first.summary)),
    hiddenCharacters(first)
      ? h(
          'p',
          { class: 'warning hidden-chars', role: 'alert' },
          'Warning: this request contains control, bidirectional or invisible characters. ',
          'They are shown as \\u{…} codes; read the command as written here, not as it may look elsewhere.',
        )
      : null,
    h('p', { class: 'meta' }, 'Requested ', formatTime(first.createdAt), ' · ', countdown, ' · ', progress),
    actionDetails(first),
    decisions,
    decide,
    status,
  );

  const card: ApprovalCard = {
    el,
    id: first.id,
    update(v) {
      view = v;
      progress.textContent = approvalProgress(v);
      replace(decisions, decisionList(v));
      if (v.state !== 'pending') {
        el.classList.add('decided', v.state);
        countdown.textContent = v.state;
        decide.hidden = true;
      }
    },
    tick(now) {
      if (view.state !== 'pending') return;
      const left = Date.parse(view.expiresAt) - now;
      countdown.textContent = left > 0 ? `expires in ${formatRemaining(left)}` : 'expired';
      countdown.classList.toggle('soon', left < 60_000);
    },
    decided: () => view.state !== 'pending',
  };

  const send = async (decision: DecisionBody['decision']) => {
    approve.disabled = deny.disabled = true;
    const body: DecisionBody = { decision, ...(reason.value.trim() ? { reason: reason.value.trim() } : {}) };
    try {
      const after = await api.post<ApprovalView>(`approvals/${encodeURIComponent(view.id)}/decision`, body);
      card.update(after);
      status.textContent =
        after.state === 'pending'
          ? `Your decision is recorded: ${approvalProgress(after)}, waiting for more approvers.`
          : `Decided: ${after.state}.`;
      ctx.showError(undefined);
    } catch (err) {
      ctx.failed(err);
    } finally {
      approve.disabled = deny.disabled = false;
    }
  };
  approve.addEventListener('click', () => void send('approve'));
  deny.addEventListener('click', () => void send('deny'));
  card.update(first);
  card.tick(Date.now());
  return card;
}
