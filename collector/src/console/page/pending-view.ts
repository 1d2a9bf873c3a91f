/**
 * Requests waiting for a decision, refreshed by polling. Cards are kept by
 * id across refreshes, so a reason being typed survives them; a card decided
 * here stays (showing its outcome) until the view is shown again. The
 * collector sends those expiring soonest first; when it sent only part of
 * them, the view says how many there are.
 */
import type { ApprovalView } from '@chaperone/shared';
import { api } from './api.ts';
import { type ApprovalCard, approvalCard } from './approval-card.ts';
import type { View, ViewContext } from './context.ts';
import { h } from './dom.ts';
import { listCutShort } from './format.ts';

export class PendingView implements View {
  readonly root = h('section', { class: 'pending' });
  readonly #list = h('div', { class: 'cards' });
  readonly #empty = h('p', { class: 'muted empty' }, 'No requests are waiting for a decision.');
  /** `Showing 100 of 340 …` when the collector sent only part of them. */
  readonly #count = h('p', { class: 'warning count', role: 'status', hidden: true });
  readonly #cards = new Map<string, ApprovalCard>();
  readonly #ctx: ViewContext;

  constructor(ctx: ViewContext) {
    this.#ctx = ctx;
    this.root.append(h('h2', {}, 'Pending requests'), this.#count, this.#empty, this.#list);
  }

  async refresh(): Promise<void> {
    const { items, total } = await api.get<{ items: ApprovalView[]; total?: number }>(
      'approvals?state=pending',
    );
    const cut = listCutShort(items.length, total);
    this.#count.hidden = cut === undefined;
    this.#count.textContent = cut ?? '';
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
