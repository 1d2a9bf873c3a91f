/**
 * The access review as CSV and Markdown (JSON is the report itself). Pure.
 *
 * CSV (RFC 4180): a header line, one line per row, CRLF line ends; a cell
 * holding a comma, a quote, CR or LF is quoted, its quotes doubled. A cell a
 * spreadsheet would read as a formula (starting with = + - @ TAB or CR) is
 * prefixed with `'`, so an agent-chosen resource or verb never runs as one.
 *
 * Markdown: a section per identity (namespace/serviceAccount), a table per
 * category; every cell is shown, not interpreted: control and invisible
 * characters written out (text/visible-text.ts); a value of more than
 * letters, digits, spaces, `/` and `-` is then put in a code span fenced with
 * more backticks than it holds, its pipes escaped (the table takes `\|` out
 * before reading the cell). Nothing in a code span is Markdown:
 * a value cannot close the table, add a link or raw HTML, nor become an
 * autolink (GitHub links a bare `https://…`, `www.…` or e-mail address in
 * text, which escaping its characters does not prevent).
 */
import type { AccessReport, AccessReportRow } from '../store/store.ts';
import { visible } from '../text/visible-text.ts';

export const REPORT_COLUMNS = [
  'namespace',
  'serviceAccount',
  'category',
  'protocol',
  'verb',
  'resource',
  'count',
  'first',
  'last',
] as const satisfies readonly (keyof AccessReportRow)[];

export function csvCell(value: string | number): string {
  let s = String(value);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function reportCsv(report: AccessReport): string {
  const lines = [REPORT_COLUMNS.join(',')];
  for (const r of report.rows) lines.push(REPORT_COLUMNS.map((c) => csvCell(r[c])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

/** Letters, digits, spaces, `/` and `-`: nothing Markdown reads, nothing a link can be made of. */
const PLAIN = /^[A-Za-z0-9 /-]*$/;

/** A Markdown table cell (or heading part) showing `value` as text: as it is when plain, else a code span. */
export function markdownCell(value: string | number): string {
  const shown = visible(String(value));
  if (PLAIN.test(shown)) return shown;
  const text = shown.replaceAll('|', '\\|');
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  // A span's content starting and ending with a space loses one each side: pad when it starts or ends
  // with a space or a backtick (which would join the fence), unless it is only spaces (kept as is).
  const pad = /^[ `]|[ `]$/.test(text) && text.trim() !== '' ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}

const CATEGORY_TITLES: Record<AccessReportRow['category'], string> = {
  read: 'Read',
  changed: 'Changed',
  denied: 'Denied',
  approved: 'Approved',
  masked: 'Masked',
};

export function reportMarkdown(report: AccessReport, generatedAt: string): string {
  const out = [
    `# Access review ${report.since} – ${report.until}`,
    '',
    `Generated ${generatedAt}. Counts are of audit events, by UTC day; a blocked action is listed only as denied, an approved or masked one also as read or changed.`,
  ];
  if (report.truncated) out.push('', `**Cut short:** only the first ${report.rows.length} rows are shown.`);
  if (report.rows.length === 0) out.push('', 'No activity in this range.');
  let identity = '';
  let category = '';
  for (const r of report.rows) {
    const who = `${r.namespace}/${r.serviceAccount}`;
    if (who !== identity) {
      identity = who;
      category = '';
      out.push('', `## ${markdownCell(r.namespace)} / ${markdownCell(r.serviceAccount)}`);
    }
    if (r.category !== category) {
      category = r.category;
      out.push(
        '',
        `### ${CATEGORY_TITLES[r.category] ?? markdownCell(r.category)}`,
        '',
        '| protocol | verb | resource | count | first | last |',
        '|---|---|---|---:|---|---|',
      );
    }
    out.push(
      // The count and the times are the collector's own (digits, RFC 3339): shown as they are.
      `| ${[r.protocol, r.verb, r.resource].map((v) => markdownCell(v)).join(' | ')} | ${r.count} | ${r.first} | ${r.last} |`,
    );
  }
  return `${out.join('\n')}\n`;
}
