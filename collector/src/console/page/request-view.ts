/** One request by id (`/console/approvals/<id>`, the link a notification carries), pending or not. */
import type { ApprovalView } from '@chaperone/shared';
import { api } from './api.ts';
import { type ApprovalCard, approvalCard } from './approval-card.ts';
import type { View, ViewContext } from './context.ts';
import { h, replace } from './dom.ts';

export class RequestView implements View {
  readonly root = h('section', { class: 'request' });
  readonly poll = true;
  readonly #id: string;
  readonly #ctx: ViewContext;
  #card: ApprovalCard | undefined;

  constructor(id: string, ctx: ViewContext) {
    this.#id = id;
    this.#ctx = ctx;
  }

  async refresh(): Promise<void> {
    const v = await api.get<ApprovalView>(`approvals/${encodeURIComponent(this.#id)}`);
    if (this.#card) this.#card.update(v);
    else {
      this.#card = approvalCard(v, this.#ctx);
      replace(this.root, h('h2', {}, 'Request'), this.#card.el);
    }
  }

  tick(): void {
    this.#card?.tick(Date.now());
  }
}
