/**
 * Sessions (/console/sessions?…): exec, attach, port-forward and database
 * sessions, newest first, a page at a time with the API's cursor; each
 * links to its replay or statement stream.
 */
import type { View } from './context.ts';
import { h, replace } from './dom.ts';
import { filterForm } from './filter-form.ts';
import { SESSION_FILTERS } from './filters.ts';
import { formatTime, shown } from './format.ts';
import { readPage } from './paged-list.ts';
import type { SessionSummary } from './query-types.ts';
import { link } from './routes.ts';
import { row, table } from './table.ts';

export class SessionsView implements View {
  readonly root = h('section', { class: 'sessions' });
  readonly #params: URLSearchParams;

  constructor(params: URLSearchParams) {
    this.#params = params;
  }

  async refresh(): Promise<void> {
    const { page, pager } = await readPage<SessionSummary>(
      'sessions',
      this.#params,
      SESSION_FILTERS,
      '/console/sessions',
    );
    replace(
      this.root,
      h('h2', {}, 'Sessions'),
      filterForm({
        path: '/console/sessions',
        params: this.#params,
        fields: [
          { name: 'namespace', label: 'Namespace' },
          { name: 'pod', label: 'Pod' },
          { name: 'serviceAccount', label: 'Service account' },
          { name: 'protocol', label: 'Protocol', choices: ['exec', 'attach', 'portforward', 'postgres'] },
          { name: 'since', label: 'Since', placeholder: '24h' },
          { name: 'until', label: 'Until', placeholder: 'now' },
        ],
      }),
      table(
        'session-list',
        [
          'Started',
          'Agent',
          'Service account',
          'Protocol',
          'Session',
          'Events',
          'Blocked',
          'Recording',
          'State',
        ],
        page.items.map((s) =>
          row(
            { 'data-id': s.sessionId, class: s.live ? 'live' : undefined },
            h('a', { href: link.session(s.sessionId) }, formatTime(s.startedAt)),
            shown(`${s.namespace}/${s.pod}`),
            shown(s.serviceAccount),
            s.protocol,
            h('code', { class: 'action-text' }, shown(s.summary)),
            s.events,
            s.blocked,
            s.recording ? 'yes' : '—',
            s.live ? h('strong', { class: 'live' }, 'live') : `ended ${formatTime(s.lastAt)}`,
          ),
        ),
        'No sessions match these filters.',
      ),
      pager,
    );
  }
}
