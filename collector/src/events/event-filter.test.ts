import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEventFilter } from './event-filter.ts';

const NOW = Date.UTC(2026, 0, 15, 12) * 1000;
const parse = (q: string) => {
  const p = new URLSearchParams(q);
  return parseEventFilter((n) => p.getAll(n), NOW);
};

describe('event filter', () => {
  it('accepts repeated and comma-separated values, deduplicated', () => {
    assert.deepEqual(parse('namespace=a&namespace=b,c&namespace=a').namespace, ['a', 'b', 'c']);
    assert.deepEqual(parse('decision=deny,mask').decision, ['deny', 'mask']);
    assert.deepEqual(parse(''), {});
  });

  it('parses time bounds and free text', () => {
    const f = parse('since=1h&until=2026-01-15T11:30:00Z&q=rm%20-rf');
    assert.equal(f.sinceUs, NOW - 3600e6);
    assert.equal(f.untilUs, NOW - 1800e6);
    assert.equal(f.q, 'rm -rf');
  });

  it('refuses values outside closed sets and bad times, naming the parameter', () => {
    assert.throws(
      () => parse('protocol=ssh'),
      /protocol: "ssh" is not one of kubernetes, exec, postgres, system/,
    );
    assert.throws(() => parse('decision=maybe'), /decision/);
    assert.throws(() => parse('since=last%20week'), /since: "last week" is neither/);
    assert.throws(() => parse(`q=${'x'.repeat(600)}`), /at most 512/);
    assert.throws(
      () => parse(Array.from({ length: 51 }, (_, i) => `pod=p${i}`).join('&')),
      /at most 50 values/,
    );
  });
});
