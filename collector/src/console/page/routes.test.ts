import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPagePath, link, routeOf, sectionOf } from './routes.ts';

describe('console addresses', () => {
  it('reads each view from its address', () => {
    assert.deepEqual(routeOf('/console/'), { view: 'overview' });
    assert.deepEqual(routeOf('/console/events'), { view: 'events' });
    assert.deepEqual(routeOf('/console/events/4f1c-aa'), { view: 'event', id: '4f1c-aa' });
    assert.deepEqual(routeOf('/console/sessions'), { view: 'sessions' });
    assert.deepEqual(routeOf('/console/sessions/s-1'), { view: 'session', id: 's-1' });
    assert.deepEqual(routeOf('/console/approvals'), { view: 'approvals' });
    const uuid = '0f8fad5b-d9cb-469f-a165-70867728950e';
    assert.deepEqual(routeOf(`/console/approvals/${uuid}`), { view: 'approval', id: uuid });
    assert.deepEqual(routeOf('/console/access-review'), { view: 'access-review' });
    assert.equal(sectionOf({ view: 'session', id: 'x' }), 'sessions');
    assert.equal(sectionOf({ view: 'approval', id: uuid }), 'approvals');
  });

  it('serves nothing at addresses the console does not have', () => {
    for (const p of [
      '/console',
      '/console/assets/app.js',
      '/console/approvals/not-an-id',
      '/console/events/a/b',
      '/console/events/%zz',
      `/console/events/${'a'.repeat(257)}`,
      '/console/events/a%2Fb',
      '/console/events/<script>',
      '/console/eventsx',
    ])
      assert.equal(isPagePath(p), false, p);
  });

  it('links escape what they carry', () => {
    assert.equal(link.event('a/b?c'), '/console/events/a%2Fb%3Fc');
    assert.equal(
      link.events(new URLSearchParams({ rule: 'no delete', cursor: 'x&y' })),
      '/console/events?rule=no+delete&cursor=x%26y',
    );
    assert.equal(link.events(new URLSearchParams()), '/console/events');
  });
});
