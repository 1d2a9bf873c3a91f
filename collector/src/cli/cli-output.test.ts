// The operator verbs print what an agent chose (URIs, pod names, SQL, messages) without
// letting the terminal act on it. Runs `chaperone audit query` (table, json, jsonl) and
// `replay` (the chaperone binary, cli.ts) against an in-process collector holding events
// full of escape sequences. Fails if print()/printJson() in cli.ts write their input
// as is (raw ESC/CSI bytes then reach stdout): tried.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
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
    c = await startTestCollector();
    const events = makeChain(TEST_SOURCE, 2, {
      spec: (i) => ({
        requestURI: `/api/v1/namespaces/agents/configmaps/x${EVIL}`,
        name: `x${EVIL}`,
        ...(i === 2 ? { sessionId: 'sess-1', protocol: 'exec', argv: ['sh', '-c', `echo ${EVIL}`] } : {}),
      }),
    });
    const token = await c.issuer.token(TEST_SOURCE);
    await streamEvents({
      url: c.url,
      token: () => token,
      sidecarId: TEST_SOURCE.sidecarId,
      events,
      deadlineMs: 10_000,
    });
  });
  after(async () => {
    await c?.close();
  });

  async function run(args: string[]): Promise<string> {
    const child = spawn(process.execPath, [CHAPERONE_BIN, ...args], {
      env: { ...process.env, CHAPERONE_COLLECTOR_URL: c.queryUrl, CHAPERONE_TOKEN: QUERY_TOKEN },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const code = await new Promise((r) => child.once('close', r));
    assert.equal(code, 0, Buffer.concat(err).toString());
    return Buffer.concat(out).toString('utf8');
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
