import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChaperoneError, ConfigError, isErrorCode, toChaperoneError, ValidationError } from './errors.ts';

describe('errors', () => {
  it('carry a stable code, a name and the cause', () => {
    const cause = new Error('socket closed');
    const err = new ConfigError('bad port', { cause });
    assert.equal(err.code, 'config_invalid');
    assert.equal(err.name, 'ConfigError');
    assert.equal(err.cause, cause);
    assert.ok(err instanceof ChaperoneError);
    assert.equal(new ValidationError('/a/b', 'must be a string').message, '/a/b: must be a string');
  });

  it('normalises unknown throwables at the edge', () => {
    assert.equal(toChaperoneError(new TypeError('x')).code, 'internal');
    assert.equal(toChaperoneError('str', 'unavailable').code, 'unavailable');
    const original = new ChaperoneError('timeout', 't');
    assert.equal(toChaperoneError(original), original);
    assert.equal(isErrorCode('timeout'), true);
    assert.equal(isErrorCode('nope'), false);
  });
});
