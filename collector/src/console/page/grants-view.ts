/** Grant windows opened by approvals, with revoke. */
import type { GrantView } from '@chaperone/shared';
import { api } from './api.ts';
import type { View, ViewContext } from './context.ts';
import { h, replace } from './dom.ts';
import { formatTime, shown } from './format.ts';

export class GrantsView implements View {
  readonly root = h('section', { class: 'grants' });
  readonly #body = h('tbody');
  readonly #ctx: ViewContext;

  constructor(ctx: ViewContext) {
    this.#ctx = ctx;
    this.root.append(
      h('h2', {}, 'Grants'),
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['Action', 'Requester', 'Rule', 'Opened', 'Until', 'State', ''].map((t) => h('th', {}, t)),
          ),
        ),
        this.#body,
      ),
    );
  }

  async refresh(): Promise<void> {
    const { items } = await api.get<{ items: GrantView[] }>('grants?state=all');
    const now = Date.now();
    replace(
      this.#body,
      ...(items.length
        ? items.map((g) => this.#row(g, now))
        : [h('tr', {}, h('td', { colspan: '7', class: 'muted' }, 'No grants.'))]),
    );
  }

  #row(g: GrantView, now: number): HTMLElement {
    const active = !g.revokedAt && Date.parse(g.until) > now;
    const state = g.revokedAt
      ? `revoked by ${shown(g.revokedBy ?? 'someone')} at ${formatTime(g.revokedAt)}`
      : active
        ? 'active'
        : 'ended';
    const revoke = h('button', { type: 'button', class: 'revoke' }, 'Revoke');
    revoke.addEventListener('click', async () => {
      revoke.disabled = true;
      try {
        await api.del<GrantView>(`grants/${encodeURIComponent(g.id)}`);
        this.#ctx.showError(undefined);
        await this.refresh();
      } catch (err) {
        revoke.disabled = false;
        this.#ctx.failed(err);
      }
    });
    return h(
      'tr',
      { 'data-id': g.id },
      h('td', {}, h('code', {}, shown(g.summary))),
      h('td', {}, shown(`${g.requester.namespace}/${g.requester.pod}`)),
      h('td', {}, h('code', {}, shown(g.rule))),
      h('td', {}, formatTime(g.createdAt)),
      h('td', {}, formatTime(g.until)),
      h('td', {}, state),
      h('td', {}, active ? revoke : ''),
    );
  }
}
