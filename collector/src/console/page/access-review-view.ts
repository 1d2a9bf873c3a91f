/**
 * Access review (/console/access-review?since&until&namespace&serviceAccount):
 * per agent identity (namespace and service account), what it read, changed,
 * was denied, had approved and had masked over the period, from /v1/report,
 * with the same report to download as CSV or JSON (the API's own
 * `format=csv|json`, through the console).
 */
import { api, apiUrl } from './api.ts';
import type { View } from './context.ts';
import { h, replace } from './dom.ts';
import { filterForm } from './filter-form.ts';
import { dayBound, dayOf, dayOfBound, pickFilters, REVIEW_FILTERS, withParams } from './filters.ts';
import { formatTime, shown } from './format.ts';
import type { Report, ReportRow } from './query-types.ts';
import { row, table } from './table.ts';

const BOUNDS = new Set(['since', 'until']);

export class AccessReviewView implements View {
  readonly root = h('section', { class: 'access-review' });
  readonly #params: URLSearchParams;

  constructor(params: URLSearchParams) {
    this.#params = params;
  }

  async refresh(): Promise<void> {
    const query = pickFilters(this.#params, REVIEW_FILTERS);
    if (!query.has('since')) query.set('since', dayBound(dayOf(Date.now(), 30), 'since'));
    const report = await api.get<Report>(
      withParams('report', pickFilters(query, REVIEW_FILTERS, { format: 'json' })),
    );
    const download = (format: string) =>
      apiUrl(withParams('report', pickFilters(query, REVIEW_FILTERS, { format })));
    replace(
      this.root,
      h('h2', {}, 'Access review'),
      filterForm({
        path: '/console/access-review',
        params: query,
        fields: [
          { name: 'since', label: 'From (day)', type: 'date' },
          { name: 'until', label: 'To (day, included)', type: 'date' },
          { name: 'namespace', label: 'Namespace' },
          { name: 'serviceAccount', label: 'Service account' },
        ],
        convert: (name, v) => (BOUNDS.has(name) ? dayBound(v, name as 'since' | 'until') : v),
        display: (name, v) => (BOUNDS.has(name) ? dayOfBound(v, name as 'since' | 'until') : v),
      }),
      h(
        'p',
        { class: 'period' },
        `${formatTime(report.since)} – ${formatTime(report.until)} · generated ${formatTime(report.generatedAt)} · `,
        h(
          'a',
          { href: download('csv'), class: 'download csv', download: 'access-review.csv' },
          'Download CSV',
        ),
        ' · ',
        h(
          'a',
          { href: download('json'), class: 'download json', download: 'access-review.json' },
          'Download JSON',
        ),
      ),
      ...(report.rows.length
        ? identities(report.rows).map(([who, rows]) =>
            h(
              'div',
              { class: 'identity', 'data-identity': who },
              h('h3', {}, shown(who)),
              table(
                'report',
                ['Category', 'Protocol', 'Verb', 'Resource', 'Count', 'First', 'Last'],
                rows.map((r) =>
                  row(
                    { class: `category ${r.category}` },
                    r.category,
                    r.protocol,
                    h('code', {}, shown(r.verb)),
                    h('code', {}, shown(r.resource)),
                    r.count,
                    formatTime(r.first),
                    formatTime(r.last),
                  ),
                ),
                '',
              ),
            ),
          )
        : [h('p', { class: 'muted' }, 'No agent did anything in this period.')]),
    );
  }
}

/** The rows grouped by identity (`namespace/serviceAccount`), in the report's order. */
function identities(rows: readonly ReportRow[]): [string, ReportRow[]][] {
  const out = new Map<string, ReportRow[]>();
  for (const r of rows) {
    const who = `${r.namespace}/${r.serviceAccount}`;
    out.set(who, [...(out.get(who) ?? []), r]);
  }
  return [...out];
}
