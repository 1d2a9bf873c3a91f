// JSON patch operations on masked objects: only those that write their own value pass.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { maskedJsonPatchEscapes } from './secret-writes.ts';

describe('maskedJsonPatchEscapes', () => {
  const cases: [string, unknown, string[]][] = [
    [
      'add, remove and replace',
      [
        { op: 'add', path: '/metadata/labels/a', value: 'b' },
        { op: 'remove', path: '/data/x' },
        { op: 'replace', path: '/data/y', value: 'eg==' },
      ],
      [],
    ],
    [
      'copy a value into an annotation',
      [
        { op: 'add', path: '/metadata/annotations', value: {} },
        { op: 'copy', from: '/data/password', path: '/metadata/annotations/leak' },
      ],
      ['patch[1].op'],
    ],
    [
      'move a value into a label',
      [{ op: 'move', from: '/data/token', path: '/metadata/labels/leak' }],
      ['patch[0].op'],
    ],
    ['test a guess', [{ op: 'test', path: '/data/password', value: 'Z3Vlc3M=' }], ['patch[0].op']],
    [
      'an op in another case (the API server rejects it; so does the guard)',
      [{ op: 'Copy', from: '/data/a', path: '/b' }],
      ['patch[0].op'],
    ],
    ['an operation that is not an object', ['copy'], ['patch[0].op']],
    ['not a patch array: nothing to say (the caller refuses it)', { op: 'copy' }, []],
  ];
  for (const [name, ops, fields] of cases) {
    it(name, () => {
      const got = maskedJsonPatchEscapes(ops);
      assert.deepEqual(
        got.map((c) => c.field),
        fields,
      );
      for (const c of got) assert.equal(c.rule, 'chaperone-no-masked-value-patch');
    });
  }
});
