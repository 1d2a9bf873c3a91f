import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readCookie, sessionCookie, sessionCookieName } from './cookies.ts';
import { crossSiteReason, csrfTokenMatches, isJson } from './request-guard.ts';

describe('console CSRF checks', () => {
  const host = 'collector.example:8444';
  const cases: [string, Record<string, string>, boolean][] = [
    ['Sec-Fetch-Site same-origin', { host, 'sec-fetch-site': 'same-origin' }, true],
    ['Sec-Fetch-Site cross-site', { host, 'sec-fetch-site': 'cross-site', origin: `https://${host}` }, false],
    ['Sec-Fetch-Site same-site', { host, 'sec-fetch-site': 'same-site' }, false],
    ['Sec-Fetch-Site none (typed in the address bar)', { host, 'sec-fetch-site': 'none' }, false],
    ['Origin of this host', { host, origin: `https://${host}` }, true],
    ['Origin of another host', { host, origin: 'https://evil.example' }, false],
    ['Origin of another port', { host, origin: 'https://collector.example:9999' }, false],
    ['Origin null', { host, origin: 'null' }, false],
    ['neither header', { host }, false],
  ];
  for (const [name, headers, ok] of cases)
    it(`${ok ? 'accepts' : 'refuses'} ${name}`, () => {
      assert.equal(crossSiteReason(headers) === undefined, ok, crossSiteReason(headers));
    });

  it('matches the synchronizer token exactly', () => {
    assert.equal(csrfTokenMatches('abc123', 'abc123'), true);
    assert.equal(csrfTokenMatches('abc123', 'abc124'), false);
    assert.equal(csrfTokenMatches('abc123', 'abc12'), false);
    assert.equal(csrfTokenMatches('abc123', ''), false);
    assert.equal(csrfTokenMatches('abc123', undefined), false);
  });

  it('wants a JSON body', () => {
    assert.equal(isJson({ 'content-type': 'application/json' }), true);
    assert.equal(isJson({ 'content-type': 'application/json; charset=utf-8' }), true);
    assert.equal(isJson({ 'content-type': 'text/plain' }), false);
    assert.equal(isJson({ 'content-type': 'application/x-www-form-urlencoded' }), false);
    assert.equal(isJson({ 'content-type': 'application/jsonp' }), false);
    assert.equal(isJson({}), false);
  });
});

describe('console session cookie', () => {
  it('is HttpOnly, SameSite=Strict, scoped to /console; with TLS a Secure __Host- cookie on /', () => {
    assert.equal(
      sessionCookie('abc_-1', { secure: false, maxAgeSeconds: 60 }),
      'chaperone-console=abc_-1; Path=/console; HttpOnly; SameSite=Strict; Max-Age=60',
    );
    assert.equal(
      sessionCookie('abc', { secure: true, maxAgeSeconds: 1.9 }),
      '__Host-chaperone-console=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=1; Secure',
    );
    assert.equal(sessionCookieName(true), '__Host-chaperone-console');
    assert.throws(() => sessionCookie('a;b', { secure: false, maxAgeSeconds: 1 }));
  });

  it('reads the cookie among others', () => {
    assert.equal(readCookie('a=1; chaperone-console=xyz; b=2', 'chaperone-console'), 'xyz');
    assert.equal(readCookie('xchaperone-console=no', 'chaperone-console'), undefined);
    assert.equal(readCookie(undefined, 'chaperone-console'), undefined);
    assert.equal(
      readCookie('chaperone-console=first; chaperone-console=second', 'chaperone-console'),
      'first',
    );
  });
});
