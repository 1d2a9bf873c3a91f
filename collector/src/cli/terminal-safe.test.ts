import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditEvent } from '@chaperone/shared';
import fc from 'fast-check';
import { makeChain, TEST_SOURCE } from '../testing/test-events.ts';
import { summary, TABLE_HEADER, tableRows } from './event-format.ts';
import { safeJson, visible } from './terminal-safe.ts';

/** Every character a terminal may act on: C0, DEL, C1, bidi controls, line/paragraph separators. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this matches
const ACTS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/;
const ACTS_IN_JSON =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this matches
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/;

const anyText = fc.string({ unit: 'binary', maxLength: 80 });

// Each test fails if the matching escape is removed (visible() returning its input, safeJson()
// returning plain JSON.stringify, format() padding the raw cell): tried.
describe('terminal-safe output', () => {
  it('shows every control character as an escape and leaves other text alone', () => {
    assert.equal(visible('a\x1b[2Jb'), 'a\\x1b[2Jb');
    assert.equal(visible('\x9b31m\x7f\r\n\t\x00'), '\\x9b31m\\x7f\\x0d\\x0a\\x09\\x00');
    assert.equal(visible('evil\u202e\u2028'), 'evil\\u{202e}\\u{2028}');
    assert.equal(visible('kubectl get pods -n ümlaut 日本'), 'kubectl get pods -n ümlaut 日本');
    fc.assert(
      fc.property(anyText, (s) => {
        const v = visible(s);
        assert.doesNotMatch(v, ACTS);
        if (!ACTS.test(s)) assert.equal(v, s);
        assert.equal(visible(v), v, 'idempotent');
      }),
      { numRuns: 2000, seed: 7 },
    );
  });

  it('prints JSON that is the same value and holds nothing a terminal acts on', () => {
    assert.equal(safeJson({ a: '\x1b\x9b\x7f' }), '{"a":"\\u001b\\u009b\\u007f"}');
    const value = fc
      .jsonValue({ maxDepth: 3, depthSize: 'small' })
      .chain((v) =>
        fc.record({ v: fc.constant(v), s: anyText, k: anyText }).map(({ v, s, k }) => ({ v, s, [k]: [s] })),
      );
    fc.assert(
      fc.property(value, fc.constantFrom(undefined, 2), (v, indent) => {
        const text = safeJson(v, indent);
        assert.doesNotMatch(text, ACTS_IN_JSON);
        if (indent === undefined) assert.doesNotMatch(text, /\n/);
        assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(v)));
      }),
      { numRuns: 1000, seed: 11 },
    );
  });

  it('renders table rows with agent-chosen text made visible, columns still aligned', () => {
    const [plain] = makeChain(TEST_SOURCE, 1) as [AuditEvent];
    const evil: AuditEvent = {
      ...plain,
      requestURI: '/api/v1/namespaces/agents/pods/x\x1b]0;owned\x07\x1b[2K\rALLOW',
      objectRef: undefined,
      verb: 'g\x9bJ',
      chaperone: {
        ...plain.chaperone,
        decision: { ...plain.chaperone.decision, rule: 'r\u202eule' },
      },
    } as AuditEvent;
    const [row] = tableRows([evil]);
    assert.ok(row);
    assert.doesNotMatch(row, ACTS);
    assert.match(row, /x\\x1b\]0;owned\\x07\\x1b\[2K\\x0dALLOW/);
    assert.match(row, /g\\x9bJ /);
    assert.match(row, /r\\u\{202e\}ule/);
    // WHAT starts where the header says, whatever the earlier cells held.
    const whatAt = TABLE_HEADER.indexOf('WHAT');
    assert.equal(row.indexOf('/api/v1/namespaces/agents/pods/x'), whatAt);
    // summary() itself is raw: printing goes through visible() (cli.ts print) or a table cell.
    assert.ok(summary(evil).includes('\x1b'));
  });
});
