import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { microTime } from '@chaperone/shared';
import fc from 'fast-check';
import { fastMicroTime } from './recorder.ts';

describe('fastMicroTime', () => {
  it("formats exactly as shared's microTime, in any order of dates", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 4102444800000 }), { minLength: 1 }), (times) => {
        for (const t of times) assert.equal(fastMicroTime(new Date(t)), microTime(new Date(t)));
      }),
    );
  });
});
