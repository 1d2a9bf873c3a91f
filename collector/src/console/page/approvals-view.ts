/**
 * Approvals (/console/approvals): requests waiting for a decision, past
 * requests and grants, one tab each (`#pending`, `#history`, `#grants` in the
 * address); they poll, so a new request shows up without a reload.
 */
import type { View, ViewContext } from './context.ts';
import { h, replace } from './dom.ts';
import { GrantsView } from './grants-view.ts';
import { HistoryView } from './history-view.ts';
import { PendingView } from './pending-view.ts';

const TABS = [
  ['pending', 'Pending'],
  ['history', 'Past requests'],
  ['grants', 'Grants'],
] as const;
type Tab = (typeof TABS)[number][0];

export class ApprovalsView implements View {
  readonly root = h('section', { class: 'approvals' });
  readonly poll = true;
  readonly #tabs: Record<Tab, View>;
  readonly #nav = h(
    'nav',
    { class: 'tabs' },
    ...TABS.map(([tab, label]) => h('a', { href: `/console/approvals#${tab}`, 'data-tab': tab }, label)),
  );
  readonly #box = h('div', {});
  #shown: View;

  constructor(ctx: ViewContext) {
    this.#tabs = { pending: new PendingView(ctx), history: new HistoryView(), grants: new GrantsView(ctx) };
    this.#shown = this.#tabs.pending;
    this.root.append(this.#nav, this.#box);
    this.#select();
  }

  /** Shows the tab the address names (pending by default); false when it was shown already. */
  #select(): boolean {
    const name = location.hash.slice(1);
    const tab: Tab = TABS.some(([t]) => t === name) ? (name as Tab) : 'pending';
    for (const a of this.#nav.querySelectorAll('a')) a.classList.toggle('current', a.dataset.tab === tab);
    const v = this.#tabs[tab];
    if (v === this.#shown && this.#box.firstChild) return false;
    this.#shown = v;
    replace(this.#box, v.root);
    return true;
  }

  /** The address's tab changed: show it and read it now. */
  hashChanged(): Promise<void> | undefined {
    return this.#select() ? this.refresh() : undefined;
  }

  refresh(): Promise<void> {
    return this.#shown.refresh();
  }

  tick(): void {
    this.#shown.tick?.();
  }
}
