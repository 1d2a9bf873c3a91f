import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseServerVersion, supportsNativeSidecars } from './server-version.ts';

describe('server version', () => {
  it('parses plain and provider versions', () => {
    assert.deepEqual(parseServerVersion({ major: '1', minor: '20', gitVersion: 'v1.20.2' }), {
      major: 1,
      minor: 20,
      gitVersion: 'v1.20.2',
    });
    assert.equal(
      parseServerVersion({ major: '1', minor: '29+', gitVersion: 'v1.29.3-eks-adc7111' }).minor,
      29,
    );
    assert.equal(parseServerVersion({ major: '', minor: '', gitVersion: 'v1.30.1+k3s1' }).minor, 30);
    assert.throws(() => parseServerVersion({}), /cannot read the server version/);
  });
  it('native sidecars from 1.29', () => {
    assert.equal(supportsNativeSidecars({ major: 1, minor: 20, gitVersion: '' }), false);
    assert.equal(supportsNativeSidecars({ major: 1, minor: 28, gitVersion: '' }), false);
    assert.equal(supportsNativeSidecars({ major: 1, minor: 29, gitVersion: '' }), true);
    assert.equal(supportsNativeSidecars({ major: 2, minor: 0, gitVersion: '' }), true);
  });
});
