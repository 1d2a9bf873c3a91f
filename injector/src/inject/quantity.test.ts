import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalQuantity, isQuantity } from './quantity.ts';

describe('canonicalQuantity (as the API server stores quantities)', () => {
  const cases: [string, string][] = [
    ['100m', '100m'],
    ['0.5', '500m'],
    ['.5', '500m'],
    ['1.5', '1500m'],
    ['2000m', '2'],
    ['1', '1'],
    ['1000', '1k'],
    ['64Mi', '64Mi'],
    ['1024Mi', '1Gi'],
    ['1.5Gi', '1536Mi'],
    ['0.5Gi', '512Mi'],
    ['512', '512'],
    ['1Ki', '1Ki'],
    ['0.5Ki', '512'],
    ['128M', '128M'],
    ['0.1m', '1m'],
    ['0', '0'],
    ['0Mi', '0'],
    ['250m', '250m'],
  ];
  for (const [input, want] of cases) {
    it(`${input} → ${want}`, () => assert.equal(canonicalQuantity(input), want));
  }
  it('rejects what is not a quantity', () => {
    for (const bad of ['', 'abc', '-1', '1.2.3', '10mb', '1e3x', ' 1']) {
      assert.equal(isQuantity(bad), false, bad);
      assert.throws(() => canonicalQuantity(bad), /not a Kubernetes quantity/);
    }
  });
});
