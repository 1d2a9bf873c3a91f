/**
 * GET /v1/report?since=30d&until&namespace…&serviceAccount…&format=json|csv|markdown: the
 * access review (what each identity read, changed, was denied, had approved or masked),
 * from the store's daily rollups, narrowed to the caller's namespaces. `chaperone audit
 * report` prints the same answer.
 */
import { ValidationError } from '@chaperone/shared';
import { microsToRfc3339 } from '../events/time.ts';
import type { AuditStore } from '../store/store.ts';
import { sendJson } from './json-response.ts';
import { listParam, scopedNamespaces, timeRange } from './namespace-scope.ts';
import type { QueryRoute } from './query-route.ts';
import { reportCsv, reportMarkdown } from './report-format.ts';

export const REPORT_FORMATS = ['json', 'csv', 'markdown'] as const;

export function reportRoutes(store: AuditStore): QueryRoute {
  return async ({ res, url, who, nowUs }) => {
    if (url.pathname !== '/v1/report') return false;
    const params = url.searchParams;
    const format = params.get('format') ?? 'json';
    if (!(REPORT_FORMATS as readonly string[]).includes(format))
      throw new ValidationError('format', `must be one of ${REPORT_FORMATS.join(', ')}`);
    const namespace = scopedNamespaces(who, listParam(params, 'namespace'));
    const serviceAccount = listParam(params, 'serviceAccount');
    const report = await store.accessReport({
      ...timeRange(params, nowUs, { since: '30d' }),
      ...(namespace ? { namespace } : {}),
      ...(serviceAccount.length ? { serviceAccount } : {}),
    });
    const generatedAt = microsToRfc3339(nowUs);
    if (format === 'json') {
      const { since, until, rows, truncated } = report;
      sendJson(res, 200, JSON.stringify({ since, until, generatedAt, rows, truncated }));
      return true;
    }
    const name = `access-review-${report.since.slice(0, 10)}-${report.until.slice(0, 10)}`;
    res.writeHead(200, {
      'content-type': format === 'csv' ? 'text/csv; charset=utf-8' : 'text/markdown; charset=utf-8',
      'content-disposition': `attachment; filename="${name}.${format === 'csv' ? 'csv' : 'md'}"`,
      'cache-control': 'no-store',
    });
    res.end(format === 'csv' ? reportCsv(report) : reportMarkdown(report, generatedAt));
    return true;
  };
}
