import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { actionDigest } from './action-digest.ts';
import { type BindValues, bindDigestParts } from './bind-params.ts';

const digest = actionDigest();
const statement = ['postgres', 'app', 'DELETE FROM orders WHERE id = $1', '0'];
const of = (b: BindValues) => digest([...statement, ...bindDigestParts(b)]);
const one = (types: number[], formats: number[] = [], params: (Buffer | null)[] = [Buffer.from('7')]) =>
  of({ params, formats, types });

describe("a Bind's digest", () => {
  it('is the same for the same types, formats and values', () => {
    assert.equal(one([23]), one([23]));
  });

  it('differs when the same values are declared another type (a grant for int4 does not cover text)', () => {
    assert.notEqual(one([23]), one([25]));
    // Unspecified (the server infers it) is another declaration again, and so is one more declared type.
    assert.notEqual(one([23]), one([]));
    assert.notEqual(one([23]), one([23, 0]));
  });

  it('differs in formats and values, and tells NULL from an empty value', () => {
    assert.notEqual(one([23]), one([23], [1]));
    assert.notEqual(one([23]), one([23], [], [Buffer.from('8')]));
    assert.notEqual(one([23], [], [null]), one([23], [], [Buffer.alloc(0)]));
  });
});
