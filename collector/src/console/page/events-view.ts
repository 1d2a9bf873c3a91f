/**
 * Events (/console/events?…): the stored audit events the filters in the
 * page's address select (the API's own filter names), newest first, a page
 * at a time with the API's cursor; each links to its detail, its session
 * and its approval.
 */
import type { AuditEvent } from '@chaperone/shared';
import type { View } from './context.ts';
import { h, replace } from './dom.ts';
import { decisionClass, decisionText, eventSource, eventText } from './event-text.ts';
import { filterForm } from './filter-form.ts';
import { EVENT_FILTERS, pickFilters } from './filters.ts';
import { formatTime, shown } from './format.ts';
import { readPage } from './paged-list.ts';
import { link } from './routes.ts';
import { row, table } from './table.ts';

const PROTOCOLS = ['kubernetes', 'exec', 'postgres', 'system'];
const DECISIONS = ['allow', 'deny', 'mask', 'review'];

export class EventsView implements View {
  readonly root = h('section', { class: 'events' });
  readonly #params: URLSearchParams;

  constructor(params: URLSearchParams) {
    this.#params = params;
  }

  async refresh(): Promise<void> {
    const { page, pager } = await readPage<AuditEvent>(
      'events',
      this.#params,
      EVENT_FILTERS,
      '/console/events',
    );
    const filters = pickFilters(this.#params, EVENT_FILTERS);
    replace(
      this.root,
      h('h2', {}, 'Events'),
      filterForm({
        path: '/console/events',
        params: this.#params,
        fields: [
          { name: 'namespace', label: 'Namespace' },
          { name: 'pod', label: 'Pod' },
          { name: 'serviceAccount', label: 'Service account' },
          { name: 'protocol', label: 'Protocol', choices: PROTOCOLS },
          { name: 'verb', label: 'Verb' },
          { name: 'decision', label: 'Decision', choices: DECISIONS },
          { name: 'rule', label: 'Rule' },
          { name: 'since', label: 'Since', placeholder: '24h or 2026-12-01T00:00:00Z' },
          { name: 'until', label: 'Until', placeholder: 'now' },
          { name: 'q', label: 'Text', placeholder: 'in the command, URI or SQL' },
        ],
        keep: ['sessionId', 'limit'],
      }),
      filters.has('sessionId')
        ? h(
            'p',
            { class: 'muted' },
            'Events of session ',
            h('code', {}, shown(filters.get('sessionId') ?? '')),
          )
        : null,
      table(
        'event-list',
        ['Time', 'Agent', 'Service account', 'Protocol', 'Verb', 'Action', 'Decision', 'Rule', ''],
        page.items.map((e) => eventRow(e)),
        'No events match these filters.',
      ),
      pager,
    );
  }
}

function eventRow(e: AuditEvent): HTMLElement {
  const c = e.chaperone;
  const approvalId = c.decision.approval?.id;
  return row(
    { 'data-id': e.auditID, class: decisionClass(e) },
    h('a', { href: link.event(e.auditID) }, formatTime(e.requestReceivedTimestamp)),
    eventSource(e),
    shown(c.source.serviceAccount),
    c.protocol,
    h('code', {}, shown(e.verb)),
    h('code', { class: 'action-text' }, eventText(e)),
    h('span', { class: `decision ${decisionClass(e)}` }, decisionText(e)),
    h('code', {}, shown(c.decision.rule)),
    h(
      'span',
      { class: 'links' },
      c.sessionId ? h('a', { href: link.session(c.sessionId) }, 'session') : null,
      approvalId ? h('a', { href: link.approval(approvalId) }, 'approval') : null,
    ),
  );
}
