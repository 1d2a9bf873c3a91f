import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  jsonPatchWithResourceVersion,
  parseStrictJson,
  readStrictJson,
  StrictJsonError,
  withResourceVersion,
} from './strict-json.ts';

const b = (s: string) => Buffer.from(s, 'utf8');

describe('parseStrictJson', () => {
  it('reads what JSON.parse reads, for any JSON value without repeated keys', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = JSON.stringify(v);
        assert.deepEqual(parseStrictJson(b(text)), JSON.parse(text));
        const pretty = JSON.stringify(v, null, 2);
        assert.deepEqual(parseStrictJson(b(pretty)), JSON.parse(pretty));
      }),
    );
  });

  it('refuses what JSON.parse refuses, never quoting the input', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        let plain = true;
        try {
          JSON.parse(s);
        } catch {
          plain = false;
        }
        if (plain) return;
        assert.throws(
          () => parseStrictJson(b(s)),
          (err: unknown) => err instanceof StrictJsonError && !/"/.test(err.message),
        );
      }),
    );
  });

  it('refuses repeated keys at any depth, also when spelled with escapes', () => {
    for (const text of [
      '{"a":1,"a":2}',
      '{"spec":{"hostNetwork":true,"hostNetwork":false}}',
      '[{"x":{"k":1,"\\u006b":2}}]',
      '{"a":{},"b":[{"c":1,"c":1}]}',
    ]) {
      assert.throws(() => parseStrictJson(b(text)), /repeated object key/, text);
    }
    assert.deepEqual(parseStrictJson(b('{"a":{"a":1},"b":{"a":2}}')), { a: { a: 1 }, b: { a: 2 } });
  });

  it('refuses invalid UTF-8 and a byte-order mark', () => {
    assert.throws(() => parseStrictJson(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), /UTF-8/);
    assert.throws(() => parseStrictJson(b('\ufeff{}')), StrictJsonError);
  });
});

describe('preconditions written into the text', () => {
  const rv = (text: string, v = '42') => withResourceVersion(readStrictJson(b(text)), v);

  it('adds metadata.resourceVersion, keeping every other byte', () => {
    assert.equal(
      rv('{"spec":{"n":12345678901234567890}}'),
      '{"metadata":{"resourceVersion":"42"},"spec":{"n":12345678901234567890}}',
    );
    assert.equal(rv('{}'), '{"metadata":{"resourceVersion":"42"}}');
    assert.equal(rv(' { "metadata" : { } , "x":1}'), ' { "metadata" : {"resourceVersion":"42" } , "x":1}');
    assert.equal(
      rv('{"x":{"metadata":{}},"metadata":{"labels":{"a":"b"}}}'),
      '{"x":{"metadata":{}},"metadata":{"resourceVersion":"42","labels":{"a":"b"}}}',
    );
    for (const t of ['{}', '{"metadata":{"labels":null}}', '{"a":[1,{"metadata":1}],"metadata":{}}']) {
      const out = JSON.parse(rv(t, '7"x')) as { metadata: { resourceVersion: string } };
      assert.equal(out.metadata.resourceVersion, '7"x');
      parseStrictJson(b(rv(t)));
    }
  });

  it('appends a replace of /metadata/resourceVersion to a JSON patch', () => {
    const p = (text: string) =>
      JSON.parse(jsonPatchWithResourceVersion(readStrictJson(b(text)), '9')) as unknown[];
    assert.deepEqual(p('[]'), [{ op: 'replace', path: '/metadata/resourceVersion', value: '9' }]);
    assert.deepEqual(p('[ {"op":"remove","path":"/a"} ]\n'), [
      { op: 'remove', path: '/a' },
      { op: 'replace', path: '/metadata/resourceVersion', value: '9' },
    ]);
  });
});
