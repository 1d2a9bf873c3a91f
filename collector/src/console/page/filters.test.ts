import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FILTER_PARAMS } from '../../events/event-filter.ts';
import { dayBound, dayOf, dayOfBound, EVENT_FILTERS, pickFilters, withParams } from './filters.ts';

describe('filters in the address', () => {
  it('uses the API’s own filter names', () => {
    for (const n of EVENT_FILTERS) assert.ok((FILTER_PARAMS as readonly string[]).includes(n), n);
  });

  it('keeps the named filters with a value, repeated ones too, then the extras', () => {
    const from = new URLSearchParams('namespace=a&namespace=b&pod=&verb=%20get%20&evil=1&cursor=c0');
    assert.equal(
      pickFilters(from, ['namespace', 'pod', 'verb'], { limit: '50', cursor: undefined }).toString(),
      'namespace=a&namespace=b&verb=get&limit=50',
    );
    assert.equal(withParams('events', new URLSearchParams()), 'events');
    assert.equal(withParams('events', new URLSearchParams({ q: 'a b' })), 'events?q=a+b');
  });

  it('turns picked days into bounds that include the day, and back', () => {
    assert.equal(dayBound('2026-12-01', 'since'), '2026-12-01T00:00:00Z');
    assert.equal(dayBound('2026-12-31', 'until'), '2027-01-01T00:00:00Z');
    assert.equal(dayBound(' 30d ', 'since'), '30d');
    assert.equal(dayOfBound('2027-01-01T00:00:00Z', 'until'), '2026-12-31');
    assert.equal(dayOfBound('2026-12-01T00:00:00Z', 'since'), '2026-12-01');
    assert.equal(dayOfBound('30d', 'since'), '');
    assert.equal(dayOf(Date.UTC(2026, 11, 7, 23), 30), '2026-11-07');
  });
});
