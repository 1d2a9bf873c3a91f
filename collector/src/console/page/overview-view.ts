/**
 * The overview (/console/): blocked, masked and approved actions over time
 * (a chart), the same by rule, namespace and protocol, the latest blocked
 * actions in full, and the agents by activity. Its filters (since, until,
 * namespace, protocol) are in the page's address.
 */
import { type ActivityChart, activityChart } from './activity-chart.ts';
import { api } from './api.ts';
import type { View } from './context.ts';
import { h, replace } from './dom.ts';
import { decisionText, eventSource, eventText } from './event-text.ts';
import { filterForm } from './filter-form.ts';
import { OVERVIEW_FILTERS, pickFilters, withParams } from './filters.ts';
import { bucketName, formatTime, shown } from './format.ts';
import type { Counts, Overview } from './query-types.ts';
import { link } from './routes.ts';
import { row, table } from './table.ts';

const PROTOCOLS = ['kubernetes', 'exec', 'postgres', 'system'];

/** Blocked / masked / approved / total cells. */
const countCells = (c: Counts) => [c.blocked, c.masked, c.approved, c.total];

export class OverviewView implements View {
  readonly root = h('section', { class: 'overview' });
  readonly #params: URLSearchParams;
  #chart: ActivityChart | undefined;

  constructor(params: URLSearchParams) {
    this.#params = params;
  }

  async refresh(): Promise<void> {
    const query = pickFilters(this.#params, OVERVIEW_FILTERS);
    if (!query.has('since')) query.set('since', '24h');
    const o = await api.get<Overview>(withParams('overview', query));
    // Links to the events behind a number keep the overview's filters.
    const events = (extra: Record<string, string>) =>
      link.events(pickFilters(query, OVERVIEW_FILTERS, extra));
    this.#chart?.destroy();
    replace(
      this.root,
      h('h2', {}, 'Overview'),
      filterForm({
        path: '/console/',
        params: this.#params,
        fields: [
          { name: 'since', label: 'Since', placeholder: '24h' },
          { name: 'until', label: 'Until', placeholder: 'now' },
          { name: 'namespace', label: 'Namespace' },
          { name: 'protocol', label: 'Protocol', choices: PROTOCOLS },
        ],
      }),
      h(
        'p',
        { class: 'muted range' },
        `${formatTime(o.since)} – ${formatTime(o.until)}, one point per ${bucketName(o.bucketSeconds)}`,
      ),
    );
    this.#chart = activityChart(o, this.root.clientWidth || 960);
    this.root.append(
      h('div', { class: 'panel' }, this.#chart.el),
      h(
        'div',
        { class: 'grid' },
        h(
          'div',
          { class: 'by-rule' },
          h('h3', {}, 'By rule'),
          table(
            'by-rule',
            ['Rule', 'Action', 'Count'],
            o.byRule.map((r) =>
              row(
                { 'data-rule': r.rule },
                h('a', { href: events({ rule: r.rule }) }, h('code', {}, shown(r.rule))),
                r.action,
                r.count,
              ),
            ),
            'No rule blocked, masked or held anything.',
          ),
        ),
        h(
          'div',
          { class: 'by-namespace' },
          h('h3', {}, 'By namespace'),
          table(
            'by-namespace',
            ['Namespace', 'Blocked', 'Masked', 'Approved', 'All'],
            o.byNamespace.map((n) =>
              row(
                { 'data-namespace': n.namespace },
                h('a', { href: events({ namespace: n.namespace }) }, shown(n.namespace)),
                ...countCells(n),
              ),
            ),
            'No events.',
          ),
        ),
        h(
          'div',
          { class: 'by-protocol' },
          h('h3', {}, 'By protocol'),
          table(
            'by-protocol',
            ['Protocol', 'Blocked', 'Masked', 'Approved', 'All'],
            o.byProtocol.map((p) =>
              row(
                { 'data-protocol': p.protocol },
                h('a', { href: events({ protocol: p.protocol }) }, shown(p.protocol)),
                ...countCells(p),
              ),
            ),
            'No events.',
          ),
        ),
      ),
      h('h3', {}, 'Latest blocked'),
      table(
        'latest-blocked',
        ['Time', 'Agent', 'Action', 'Decision', 'Rule'],
        o.latestBlocked.map((e) =>
          row(
            { 'data-id': e.auditID },
            h('a', { href: link.event(e.auditID) }, formatTime(e.requestReceivedTimestamp)),
            eventSource(e),
            h('code', { class: 'action-text' }, eventText(e)),
            decisionText(e),
            h('code', {}, shown(e.chaperone.decision.rule)),
          ),
        ),
        'Nothing was blocked.',
      ),
      h('h3', {}, 'Agents by activity'),
      table(
        'agents',
        ['Namespace', 'Service account', 'Pods', 'Blocked', 'Masked', 'Approved', 'All', 'Last seen'],
        o.agents.map((a) =>
          row(
            { 'data-agent': `${a.namespace}/${a.serviceAccount}` },
            shown(a.namespace),
            h(
              'a',
              { href: events({ namespace: a.namespace, serviceAccount: a.serviceAccount }) },
              shown(a.serviceAccount),
            ),
            a.pods,
            ...countCells(a),
            formatTime(a.lastSeen),
          ),
        ),
        'No agent was active.',
      ),
    );
  }
}
