/** Requests that ended: outcome, who decided and why. */
import type { ApprovalView } from '@chaperone/shared';
import { decisionList } from './action-details.ts';
import { api } from './api.ts';
import type { View } from './context.ts';
import { h, replace } from './dom.ts';
import { describeRequester, formatTime, shown } from './format.ts';

export class HistoryView implements View {
  readonly root = h('section', { class: 'history' });
  readonly #body = h('tbody');

  constructor() {
    this.root.append(
      h('h2', {}, 'Past requests'),
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['Requested', 'Requester', 'Action', 'Rule', 'Outcome', 'Decided by', 'Ended'].map((t) =>
              h('th', {}, t),
            ),
          ),
        ),
        this.#body,
      ),
    );
  }

  async refresh(): Promise<void> {
    const { items } = await api.get<{ items: ApprovalView[] }>('approvals?state=decided&limit=100');
    replace(
      this.#body,
      ...(items.length
        ? items.map((v) =>
            h(
              'tr',
              { 'data-id': v.id },
              h('td', {}, formatTime(v.createdAt)),
              h('td', {}, describeRequester(v)),
              h('td', {}, h('code', {}, shown(v.summary))),
              h('td', {}, h('code', {}, shown(v.rule))),
              h('td', {}, h('span', { class: `outcome ${v.state}` }, v.state)),
              h('td', {}, decisionList(v) ?? '—'),
              h('td', {}, formatTime(v.decidedAt)),
            ),
          )
        : [h('tr', {}, h('td', { colspan: '7', class: 'muted' }, 'No decided requests yet.'))]),
    );
  }
}
