import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalJson, deepFreeze, MAX_CANONICAL_DEPTH } from './canonical-json.ts';

/** The definition, written plainly: sorted keys, undefined members left out, JSON's own scalars. */
function reference(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : reference(x))).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    const members = Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${reference(o[k])}`);
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(v);
}

function nest(depth: number, inner: unknown): unknown {
  let v = inner;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { [`k${i % 3}`]: v, z: i };
  return v;
}

describe('canonicalJson', () => {
  it('is the plain definition for any JSON value, keys of any kind and length included', () => {
    const key = fc.oneof(fc.string(), fc.constantFrom('__proto__', '1', '10', '2', 'a'.repeat(100)));
    const value = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        fc.jsonValue({ maxDepth: 2 }),
        fc.array(tie('v'), { maxLength: 4 }),
        fc.dictionary(key, fc.oneof(tie('v'), fc.constant(undefined)), { maxKeys: 5 }),
      ),
    })).v;
    fc.assert(
      fc.property(value, (v) => {
        assert.equal(canonicalJson(v), reference(v));
      }),
      { numRuns: 500 },
    );
  });

  it('encodes deep values and refuses cycles at any depth', () => {
    assert.equal(canonicalJson(nest(500, 'x')), reference(nest(500, 'x')));
    for (const depth of [0, 1, 31, 32, 33, 200]) {
      const loop: Record<string, unknown> = { a: 1 };
      loop.self = nest(depth, loop);
      assert.throws(() => canonicalJson(loop), /cyclic/, `a cycle ${depth} levels long`);
      // The same object twice, side by side, is not a cycle.
      const shared = { x: 1 };
      assert.equal(canonicalJson(nest(depth, [shared, shared])), reference(nest(depth, [shared, shared])));
    }
  });

  // Fails if the depth limit in enc() is removed (depth 10,000 then overflows the stack or, with
  // the old `stack.includes` cycle check, costs depth² comparisons): tried, both ways.
  it('refuses values nested past MAX_CANONICAL_DEPTH with the path, in time linear in the depth', () => {
    const deepest = nest(MAX_CANONICAL_DEPTH - 1, 'x');
    assert.equal(canonicalJson(deepest), reference(deepest));
    for (const depth of [MAX_CANONICAL_DEPTH + 1, 10_000, 100_000]) {
      assert.throws(
        () => canonicalJson(nest(depth, 'x')),
        (err: Error & { path?: string }) =>
          /nest more than 1000 levels deep; the limit is 1000/.test(err.message) &&
          err.name === 'ValidationError' &&
          typeof err.path === 'string' &&
          /^\/(k\d|0)\//.test(err.path),
      );
    }
    // The encoder is left in a clean state: cycle tracking does not leak into the next value.
    const shared = { x: 1 };
    const twice = nest(100, [shared, shared]);
    assert.equal(canonicalJson(twice), reference(twice));
  });

  it('encodes a deeply frozen value as the definition does, every time it meets it', () => {
    const value = fc.dictionary(fc.string({ unit: 'binary' }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 });
    fc.assert(
      fc.property(value, (v) => {
        const frozen = deepFreeze(structuredClone(v));
        const expected = reference(v);
        for (let i = 0; i < 3; i++) {
          assert.equal(canonicalJson(frozen), expected);
          assert.equal(canonicalJson({ a: [frozen], b: frozen }), `{"a":[${expected}],"b":${expected}}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  // Fails if the encoder keeps the text of an object frozen only at its top (tried: the stale text comes back).
  it('follows changes inside a value frozen only at its top, or holding an accessor', () => {
    const inner = { n: 1 };
    const shallow = Object.freeze({ inner, list: [1] });
    assert.equal(canonicalJson(shallow), '{"inner":{"n":1},"list":[1]}');
    inner.n = 2;
    shallow.list.push(3);
    assert.equal(canonicalJson(shallow), '{"inner":{"n":2},"list":[1,3]}');
    let calls = 0;
    const accessor = Object.freeze({
      get n() {
        return ++calls;
      },
    });
    assert.equal(canonicalJson(accessor), '{"n":1}');
    assert.equal(canonicalJson(accessor), '{"n":2}');
  });

  it('refuses a frozen value past MAX_CANONICAL_DEPTH however often it was encoded shallower', () => {
    const leaf = deepFreeze({ k: { k: { k: 'x' } } });
    assert.equal(canonicalJson(leaf), '{"k":{"k":{"k":"x"}}}');
    assert.equal(
      canonicalJson(nest(MAX_CANONICAL_DEPTH - 3, leaf)),
      reference(nest(MAX_CANONICAL_DEPTH - 3, leaf)),
    );
    assert.throws(
      () => canonicalJson(nest(MAX_CANONICAL_DEPTH - 2, leaf)),
      /nest more than 1000 levels deep/,
    );
  });
});
