import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { applyPatch, diff } from './json-patch.ts';

const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.string({ maxLength: 6 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.constantFrom('a', 'b', 'c/d', 'e~f', ''), tie('value'), {
      maxKeys: 4,
      noNullPrototype: true,
    }),
  ),
})).value;

describe('diff + applyPatch (RFC 6902)', () => {
  it('applying diff(a, b) to a gives b, for any JSON values', () => {
    fc.assert(
      fc.property(json, json, (a, b) => {
        assert.deepStrictEqual(applyPatch(a, diff(a, b)), b);
      }),
      { numRuns: 2000 },
    );
  });

  it('applying diff to a modified copy of an array gives the target (insertions, removals, edits)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 8 }),
        fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 8 }),
        (a, b) => {
          assert.deepStrictEqual(applyPatch({ l: a }, diff({ l: a }, { l: b })), { l: b });
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('named lists (containers, volumes, env) are matched by name', () => {
    const item = fc.record(
      { name: fc.constantFrom('a', 'b', 'c', 'd', 'e'), v: fc.integer({ min: 0, max: 2 }) },
      { noNullPrototype: true },
    );
    const list = fc.uniqueArray(item, { maxLength: 5, selector: (x) => x.name });
    fc.assert(
      fc.property(list, list, (a, b) => {
        assert.deepStrictEqual(applyPatch({ l: a }, diff({ l: a }, { l: b })), { l: b });
      }),
      { numRuns: 3000 },
    );
    // Duplicated names fall back to positions, and still round-trip.
    fc.assert(
      fc.property(fc.array(item, { maxLength: 5 }), fc.array(item, { maxLength: 5 }), (a, b) => {
        assert.deepStrictEqual(applyPatch({ l: a }, diff({ l: a }, { l: b })), { l: b });
      }),
      { numRuns: 2000 },
    );
  });

  it('adding the sidecar before a changed container is one add plus the container’s edits', () => {
    const a = { containers: [{ name: 'agent', env: [{ name: 'A', value: '1' }] }] };
    const b = {
      containers: [
        { name: 'chaperone-sidecar', image: 'x' },
        {
          name: 'agent',
          env: [
            { name: 'A', value: '1' },
            { name: 'KUBERNETES_SERVICE_HOST', value: '127.0.0.1' },
          ],
        },
      ],
    };
    assert.deepEqual(diff(a, b), [
      { op: 'add', path: '/containers/0', value: { name: 'chaperone-sidecar', image: 'x' } },
      {
        op: 'add',
        path: '/containers/1/env/1',
        value: { name: 'KUBERNETES_SERVICE_HOST', value: '127.0.0.1' },
      },
    ]);
  });

  it('a "__proto__" key (JSON.parse makes it a member) is diffed and patched like any other', () => {
    const a = JSON.parse('{"m":{"__proto__":{"x":1},"k":1}}');
    const b = JSON.parse('{"m":{"k":2}}');
    const removed = diff(a, b);
    assert.deepEqual(removed, [
      { op: 'remove', path: '/m/__proto__' },
      { op: 'replace', path: '/m/k', value: 2 },
    ]);
    assert.deepStrictEqual(applyPatch(a, removed), b);
    const added = diff(b, a);
    const back = applyPatch(b, added);
    assert.deepStrictEqual(back, a);
    assert.equal(Object.getPrototypeOf(back.m), Object.prototype);
  });
  it('equal documents give an empty patch', () => {
    fc.assert(fc.property(json, (a) => assert.deepEqual(diff(a, structuredClone(a)), [])));
  });

  it('escapes / and ~ in keys (annotation names)', () => {
    const ops = diff({ metadata: {} }, { metadata: { annotations: { 'chaperone.dev/status': '{}' } } });
    assert.deepEqual(ops, [
      { op: 'add', path: '/metadata/annotations', value: { 'chaperone.dev/status': '{}' } },
    ]);
    const ops2 = diff({ a: { 'x/y': 1, 'm~n': 1 } }, { a: { 'x/y': 2 } });
    assert.deepEqual(ops2, [
      { op: 'remove', path: '/a/m~0n' },
      { op: 'replace', path: '/a/x~1y', value: 2 },
    ]);
  });

  it('prepending a container is one add at index 0', () => {
    const a = { containers: [{ name: 'agent' }] };
    const b = { containers: [{ name: 'sidecar' }, { name: 'agent' }] };
    assert.deepEqual(diff(a, b), [{ op: 'add', path: '/containers/0', value: { name: 'sidecar' } }]);
  });

  it('applyPatch rejects paths that do not exist', () => {
    assert.throws(() => applyPatch({ a: [] }, [{ op: 'remove', path: '/a/0' }]), /out of bounds/);
    assert.throws(() => applyPatch({}, [{ op: 'replace', path: '/x', value: 1 }]), /does not exist/);
    assert.throws(() => applyPatch({}, [{ op: 'add', path: '/x/y', value: 1 }]), /does not exist/);
  });
});
