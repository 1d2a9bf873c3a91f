/**
 * Requests waiting for a decision, refreshed by polling. Cards are kept by
 * id across refreshes, so a reason being typed survives them; a card decided
 * here stays (showing its outcome) until the view is shown again.
 */
import type { ApprovalView } from '@chaperone/shared';
import { api } from './api.ts';
import { type ApprovalCard, approvalCard } from './approval-card.ts';
import type { View, ViewContext } from './context.ts';
import { h } from './dom.ts';

export class PendingView implements View {
  readonly root = h('section', { class: 'pending' });
  readonly #list = h('div', { class: 'cards' });
  readonly #empty = h('p', { class: 'muted empty' }, 'No requests are waiting for a decision.');
  readonly #cards = new Map<string, ApprovalCard>();
  readonly #ctx: ViewContext;

  constructor(ctx: ViewContext) {
    this.#ctx = ctx;
    this.root.append(h('h2', {}, 'Pending requests'), this.#empty, this.#list);
  }

  async refresh(): Promise<void> {
    const { items } = await api.get<{ items: ApprovalView[] }>('approvals?state=pending');
    const seen = new Set<string>();
    for (const v of items) {
      seen.add(v.id);
      const card = this.#cards.get(v.id);
      if (card) card.update(v);
      else {
        const c = approvalCard(v, this.#ctx);
        this.#cards.set(v.id, c);
        this.#list.append(c.el);
      }
    }
    for (const [id, c] of this.#cards)
      if (!seen.has(id) && !c.decided()) {
        c.el.remove();
        this.#cards.delete(id);
      }
    this.#empty.hidden = this.#cards.size > 0;
  }

  tick(): void {
    const now = Date.now();
    for (const c of this.#cards.values()) c.tick(now);
  }
}
