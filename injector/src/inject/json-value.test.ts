import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { cloneJson, jsonEqual } from './json-value.ts';

const json = fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown);

describe('jsonEqual / cloneJson', () => {
  it('agree with util.isDeepStrictEqual on JSON values', () => {
    fc.assert(
      fc.property(json, json, (a, b) => {
        assert.equal(jsonEqual(a, b), isDeepStrictEqual(a, b));
        assert.equal(jsonEqual(a, JSON.parse(JSON.stringify(a))), true);
      }),
      { numRuns: 2000 },
    );
  });
  it('clones deeply', () => {
    fc.assert(
      fc.property(json, (a) => {
        const c = cloneJson(a);
        assert.deepStrictEqual(c, a);
        if (typeof a === 'object' && a !== null) assert.notStrictEqual(c, a);
      }),
    );
  });
  it('key order does not matter; arrays order does; undefined members count as absent', () => {
    assert.equal(jsonEqual({ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 }), true);
    assert.equal(jsonEqual([1, 2], [2, 1]), false);
    assert.equal(jsonEqual({ a: 1, x: undefined }, { a: 1 }), true);
    assert.equal(jsonEqual({}, []), false);
    assert.equal(jsonEqual(null, {}), false);
  });
});
