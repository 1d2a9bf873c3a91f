import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loggedQuery } from './logged-query.ts';

test('logs every parameter as asked, the search text by its length only', () => {
  const params = new URLSearchParams('namespace=agents&q=hunter2%20p%C3%A4ss&limit=50&q=x');
  const logged = loggedQuery(params);
  assert.equal(logged, '?namespace=agents&q=(12 characters)&limit=50&q=(1 characters)');
  assert.doesNotMatch(logged, /hunter2/);
  assert.equal(loggedQuery(new URLSearchParams('')), '');
  assert.equal(loggedQuery(new URLSearchParams('sessionId=a b&user=x@y')), '?sessionId=a%20b&user=x%40y');
});
