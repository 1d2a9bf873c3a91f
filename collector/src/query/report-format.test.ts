import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AccessReport } from '../store/store.ts';
import { csvCell, markdownCell, reportCsv, reportMarkdown } from './report-format.ts';

const REPORT: AccessReport = {
  since: '2026-01-01T00:00:00.000000Z',
  until: '2026-01-31T00:00:00.000000Z',
  truncated: false,
  rows: [
    {
      namespace: 'team-a',
      serviceAccount: 'agent',
      category: 'read',
      protocol: 'kubernetes',
      verb: 'get',
      resource: 'secrets',
      count: 3,
      first: '2026-01-02T00:00:00.000000Z',
      last: '2026-01-03T00:00:00.000000Z',
    },
    {
      namespace: 'team-a',
      serviceAccount: 'agent',
      category: 'denied',
      protocol: 'postgres',
      verb: 'drop',
      resource: 'app/a,b',
      count: 1,
      first: '2026-01-02T00:00:00.000000Z',
      last: '2026-01-02T00:00:00.000000Z',
    },
  ],
};

describe('access review formats', () => {
  it('defuses every cell a spreadsheet would read as a formula, and quotes as RFC 4180 says', () => {
    for (const [value, cell] of [
      ['=1+1', "'=1+1"],
      ['+1', "'+1"],
      ['-1', "'-1"],
      ['@SUM(A1)', "'@SUM(A1)"],
      ['\tx', "'\tx"],
      ['\rx', `"'\rx"`],
      ['a,b', '"a,b"'],
      ['say "hi"', '"say ""hi"""'],
      ['line\nbreak', '"line\nbreak"'],
      ['pods/exec', 'pods/exec'],
      [12, '12'],
    ] as const)
      assert.equal(csvCell(value), cell, JSON.stringify(value));
  });

  it('writes a header and a CRLF-ended line per row', () => {
    assert.equal(
      reportCsv(REPORT),
      'namespace,serviceAccount,category,protocol,verb,resource,count,first,last\r\n' +
        'team-a,agent,read,kubernetes,get,secrets,3,2026-01-02T00:00:00.000000Z,2026-01-03T00:00:00.000000Z\r\n' +
        'team-a,agent,denied,postgres,drop,"app/a,b",1,2026-01-02T00:00:00.000000Z,2026-01-02T00:00:00.000000Z\r\n',
    );
  });

  it('shows Markdown cells as text: no table break, link, autolink, HTML or control character', () => {
    for (const [value, cell] of [
      ['a|b', '`a\\|b`'],
      ['[x](http://e) <img src=x>', '`[x](http://e) <img src=x>`'],
      // Written out: a code span shows `\x1b` as it is.
      ['\x1b[2Jx\ny', '`\\x1b[2Jx\\x0ay`'],
      // GitHub links these in text, never in a code span.
      ['https://evil.example/x', '`https://evil.example/x`'],
      ['www.evil.example', '`www.evil.example`'],
      ['boss@evil.example', '`boss@evil.example`'],
      // Backticks in the value cannot close the span: a longer fence, padded where the value touches it.
      ['a`b``c', '```a`b``c```'],
      ['`https://x.example`', '`` `https://x.example` ``'],
      [' www.x.example', '`  www.x.example `'],
      ['a_b_', '`a_b_`'],
      // Plain names stay as they are.
      ['', ''],
      ['pods/exec', 'pods/exec'],
      ['kube-system', 'kube-system'],
    ] as const)
      assert.equal(markdownCell(value), cell, JSON.stringify(value));
    const md = reportMarkdown(REPORT, '2026-02-01T00:00:00.000000Z');
    assert.match(md, /^# Access review 2026-01-01T00:00:00.000000Z – 2026-01-31T00:00:00.000000Z\n/);
    assert.match(
      md,
      /\n## team-a \/ agent\n\n### Read\n\n\| protocol \| verb \| resource \| count \| first \| last \|\n/,
    );
    assert.match(md, /\n### Denied\n\n[^#]*\| postgres \| drop \| `app\/a,b` \| 1 \|/);
    assert.match(reportMarkdown({ ...REPORT, rows: [] }, 'now'), /No activity in this range\./);
  });
});
