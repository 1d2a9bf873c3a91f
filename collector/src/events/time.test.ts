import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { microsToRfc3339, parseTimeBound, rfc3339ToMicros } from './time.ts';

describe('time', () => {
  it('reads RFC 3339 with microseconds, offsets and any fraction length', () => {
    assert.equal(rfc3339ToMicros('2026-01-15T10:00:00.123456Z'), Date.UTC(2026, 0, 15, 10) * 1000 + 123_456);
    assert.equal(rfc3339ToMicros('2026-01-15T10:00:00Z'), Date.UTC(2026, 0, 15, 10) * 1000);
    assert.equal(rfc3339ToMicros('2026-01-15T11:00:00.5+01:00'), Date.UTC(2026, 0, 15, 10) * 1000 + 500_000);
    assert.equal(
      rfc3339ToMicros('2026-01-15T10:00:00.123456789Z'),
      Date.UTC(2026, 0, 15, 10) * 1000 + 123_456,
    );
    assert.throws(() => rfc3339ToMicros('yesterday'), /not an RFC 3339/);
    assert.throws(() => rfc3339ToMicros('2026-13-45T10:00:00Z'), /not a valid date/);
  });

  it('writes microsecond timestamps back unchanged', () => {
    for (const t of [
      '2026-01-15T10:00:00.000001Z',
      '1999-12-31T23:59:59.999999Z',
      '2026-01-15T10:00:00.000000Z',
    ])
      assert.equal(microsToRfc3339(rfc3339ToMicros(t)), t);
  });

  it('takes a bound as a time or as a duration ago', () => {
    const now = Date.UTC(2026, 0, 15, 12) * 1000;
    assert.equal(parseTimeBound('15m', now), now - 15 * 60e6);
    assert.equal(parseTimeBound('2h', now), now - 2 * 3600e6);
    assert.equal(parseTimeBound('7d', now), now - 7 * 86_400e6);
    assert.equal(parseTimeBound('2026-01-15T11:00:00Z', now), now - 3600e6);
  });
});
