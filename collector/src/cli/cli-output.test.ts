// The operator verbs print what an agent chose (URIs, pod names, SQL, messages) without
// letting the terminal act on it. Runs `chaperone audit query` (table, json, jsonl) and
// `replay` (the chaperone binary, cli.ts) against an in-process collector holding events
// full of escape sequences. Fails if print()/printJson() in cli.ts write their input
// as is (raw ESC/CSI bytes then reach stdout): tried.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { AuditEvent } from '@chaperone/shared';
import { streamEvents } from '../testing/ingest-client.ts';
import { makeChain, TEST_SOURCE } from '../testing/test-events.ts';
import { QUERY_TOKEN, startTestCollector, type TestCollector } from '../testing/test-harness.ts';

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this looks for
const ACTS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/;
/** The `chaperone` binary of this checkout (the CLI as operators run it). */
const CHAPERONE_BIN = fileURLToPath(new URL('../../../bin/chaperone.ts', import.meta.url));
const EVIL = '\x1b]0;pwned\x07\x1b[2J\x1b[1A\rallow\x9b31m\x7f\u202e';

describe('operator output', () => {
  let c: TestCollector;
  before(async () => {
    const events = makeChain(TEST_SOURCE, 2, {
      spec: (i) => ({
        requestURI: `/api/v1/namespaces/agents/configmaps/x${EVIL}`,
        name: `x${EVIL}`,
        ...(i === 2 ? { sessionId: 'sess-1', protocol: 'exec', argv: ['sh', '-c', `echo ${EVIL}`] } : {}),
      }),
    });
    c = await collectorWith(events);
  });
  after(async () => {
    await c?.close();
  });

  async function run(args: string[]): Promise<string> {
    const r = await chaperone(c, args);
    assert.equal(r.code, 0, r.err);
    return r.out;
  }

  for (const args of [
    ['audit', 'query'],
    ['audit', 'query', '-o', 'json'],
    ['audit', 'query', '-o', 'jsonl'],
    ['replay', 'sess-1'],
    ['replay', 'sess-1', '-o', 'json'],
  ]) {
    it(`${args.join(' ')} shows control characters, never sends them`, async () => {
      const text = await run(args);
      assert.ok(text.length > 0);
      assert.doesNotMatch(text, ACTS, JSON.stringify(text));
      if (args.includes('json') || args.includes('jsonl')) {
        const values = args.includes('jsonl')
          ? text
              .trim()
              .split('\n')
              .map((l) => JSON.parse(l) as AuditEvent)
          : [JSON.parse(text)];
        assert.match(JSON.stringify(values), /\\u001b\]0;pwned/);
      } else assert.match(text, /\\x1b\]0;pwned\\x07\\x1b\[2J/);
    });
  }
});

// `chaperone replay` plays a session's recording through replay-filter.ts; `recording export`
// writes it exactly as stored. Fails when replay writes the recording raw (the OSC, DSR and
// mouse-mode sequences below then reach stdout) or export changes a byte.
describe('replay and export of a recording', () => {
  let c: TestCollector;
  const SESSION = 'sess-rec';
  const CAST = [
    '{"version":2,"width":80,"height":24,"timestamp":1768467600}',
    JSON.stringify([0.1, 'o', '\x1b]0;pwned\x07\x1b[32m$\x1b[0m ls\r\n']),
    JSON.stringify([0.2, 'i', 'ls\r']),
    JSON.stringify([0.3, 'o', 'README.md\x1b[6n\x1b[?1000h\x1b]52;c;cm0gLXJm\x07\r\n']),
    JSON.stringify([0.4, 'm', 'exit 0']),
  ]
    .map((l) => `${l}\n`)
    .join('');
  before(async () => {
    const events = makeChain(TEST_SOURCE, 2, {
      spec: (i) => (i === 1 ? { sessionId: SESSION, protocol: 'exec', argv: ['sh'] } : {}),
    });
    c = await collectorWith(events);
    await c.store.appendRecording(SESSION, TEST_SOURCE.sidecarId, TEST_SOURCE, 0, CAST);
  });
  after(async () => {
    await c?.close();
  });

  it('replay prints the events, then the recording with only what is safe for a terminal', async () => {
    const r = await chaperone(c, ['replay', SESSION, '--cat']);
    assert.equal(r.code, 0, r.err);
    const [events, rest] = r.out.split('--- recording ---\n') as [string, string];
    assert.match(events, /session sess-rec: 1 events from agents\/agent-0\n\+\s+0\.000s {2}allow {3}\$ sh\n/);
    assert.match(events, /recording: 80x24, printed at once/);
    assert.doesNotMatch(events, ACTS);
    assert.equal(
      rest,
      '\x1b[32m$\x1b[0m ls\r\nREADME.md\r\n\x1b[0m--- end of recording: exit 0; 4 control sequences not passed to this terminal ---\n',
    );
  });

  it('recording export writes the recording byte for byte, to a file or a pipe', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chaperone-export-'));
    try {
      const file = join(dir, 'sess.cast');
      const r = await chaperone(c, ['recording', 'export', SESSION, '-o', file]);
      assert.equal(r.code, 0, r.err);
      assert.equal(readFileSync(file, 'utf8'), CAST);
      assert.match(r.out, /wrote \d+ bytes to .*sess\.cast \(asciicast v2\): asciinema play/);
      const piped = await chaperone(c, ['recording', 'export', SESSION, '-o', '-']);
      assert.equal(piped.out, CAST);
      const missing = await chaperone(c, ['recording', 'export', 'no-such-session', '-o', file]);
      assert.equal(missing.code, 1);
      assert.match(missing.err, /session no-such-session has no recording/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// `chaperone audit report` prints the access review the collector's /v1/report answers: CSV with
// formulas defused, JSON, Markdown, and in each the agents' words shown, never sent to the
// terminal. Fails if the report action prints the answer as is (raw ESC then reaches stdout),
// if it drops the namespace filter, or if report-format.ts stops prefixing a formula: tried.
describe('audit report', () => {
  let c: TestCollector;
  const since = ['--since', '2026-01-01T00:00:00Z', '--until', '2026-02-01T00:00:00Z'];
  before(async () => {
    const events = makeChain(TEST_SOURCE, 4, {
      spec: (i) =>
        i <= 2
          ? { verb: 'delete', resource: `=cmd${EVIL}`, action: 'deny', rule: 'no-deletes' }
          : { verb: 'get', resource: 'configmaps' },
    });
    c = await collectorWith(events);
  });
  after(async () => {
    await c?.close();
  });

  it('prints CSV, JSON and Markdown, safe for a terminal and a spreadsheet', async () => {
    const csv = await chaperone(c, ['audit', 'report', ...since, '--format', 'csv']);
    assert.equal(csv.code, 0, csv.err);
    assert.doesNotMatch(csv.out, ACTS, JSON.stringify(csv.out));
    const lines = csv.out.trimEnd().split('\n');
    assert.equal(lines[0], 'namespace,serviceAccount,category,protocol,verb,resource,count,first,last');
    assert.match(
      lines[1] ?? '',
      /^agents,agent,read,kubernetes,get,configmaps,2,2026-01-15T09:00:00\.003000Z,/,
    );
    assert.match(lines[2] ?? '', /^agents,agent,denied,kubernetes,delete,"'=cmd\\x1b\]0;pwned/);
    const json = await chaperone(c, ['audit', 'report', ...since, '--format', 'json']);
    assert.equal(json.code, 0, json.err);
    assert.doesNotMatch(json.out, ACTS);
    const report = JSON.parse(json.out) as {
      since: string;
      rows: { category: string; resource: string; count: number }[];
    };
    assert.equal(report.since, '2026-01-01T00:00:00.000000Z');
    assert.deepEqual(
      report.rows.map((r) => [r.category, r.resource, r.count]),
      [
        ['read', 'configmaps', 2],
        ['denied', `=cmd${EVIL}`, 2],
      ],
    );
    const md = await chaperone(c, ['audit', 'report', ...since, '--format', 'markdown']);
    assert.equal(md.code, 0, md.err);
    assert.doesNotMatch(md.out, ACTS);
    assert.match(md.out, /## agents \/ agent\n\n### Read\n/);
    const other = await chaperone(c, [
      'audit',
      'report',
      ...since,
      '--namespace',
      'elsewhere',
      '--format',
      'json',
    ]);
    assert.deepEqual((JSON.parse(other.out) as { rows: unknown[] }).rows, []);
  });
});

/** The chaperone binary against the test collector's query API. */
async function chaperone(
  c: TestCollector,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const child = spawn(process.execPath, [CHAPERONE_BIN, ...args], {
    env: { ...process.env, CHAPERONE_COLLECTOR_URL: c.queryUrl, CHAPERONE_TOKEN: QUERY_TOKEN },
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  const code = (await new Promise((r) => child.once('close', r))) as number;
  return { code, out: Buffer.concat(out).toString('utf8'), err: Buffer.concat(err).toString('utf8') };
}

/** A test collector holding `events` of TEST_SOURCE, shipped through real ingest. */
async function collectorWith(events: readonly AuditEvent[]): Promise<TestCollector> {
  const c = await startTestCollector();
  const token = await c.issuer.token(TEST_SOURCE);
  await streamEvents({
    url: c.url,
    token: () => token,
    sidecarId: TEST_SOURCE.sidecarId,
    events,
    deadlineMs: 10_000,
  });
  return c;
}
