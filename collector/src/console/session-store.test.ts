import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SessionStore } from './session-store.ts';

function store(opts: { idleMs?: number; absoluteMs?: number; maxSessions?: number } = {}) {
  let t = 1_000_000;
  const s = new SessionStore({
    idleMs: opts.idleMs ?? 1000,
    absoluteMs: opts.absoluteMs ?? 5000,
    maxSessions: opts.maxSessions ?? 100,
    now: () => t,
  });
  return { s, advance: (ms: number) => (t += ms) };
}

describe('console sessions', () => {
  it('gives each session its own random id and CSRF token, and keeps the token', () => {
    const { s } = store();
    const a = s.create('tok-a', 'token');
    const b = s.create('tok-b', 'token');
    assert.notEqual(a.id, b.id);
    assert.notEqual(a.csrf, b.csrf);
    assert.notEqual(a.id, a.csrf);
    assert.match(a.id, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(s.use(a.id)?.token, 'tok-a');
    assert.equal(s.use(undefined), undefined);
    assert.equal(s.use('not-a-session'), undefined);
  });

  it('ends a session left idle, and use restarts the idle clock', () => {
    const { s, advance } = store({ idleMs: 1000 });
    const a = s.create('t', 'token');
    advance(900);
    assert.ok(s.use(a.id));
    advance(900);
    assert.ok(s.use(a.id), 'used 900 ms ago: still live');
    advance(1000);
    assert.equal(s.use(a.id), undefined);
    assert.equal(s.size, 0);
  });

  it('ends a session at its absolute expiry however busy', () => {
    const { s, advance } = store({ idleMs: 1000, absoluteMs: 3000 });
    const a = s.create('t', 'token');
    for (let i = 0; i < 5; i++) {
      advance(500);
      assert.ok(s.use(a.id));
    }
    assert.equal(s.expiresAt(a), a.createdAt + 3000);
    advance(500);
    assert.equal(s.use(a.id), undefined);
  });

  it('drops the least recently used session past the limit', () => {
    const { s } = store({ maxSessions: 2 });
    const a = s.create('a', 'token');
    const b = s.create('b', 'token');
    s.use(a.id);
    const c = s.create('c', 'token');
    assert.ok(s.use(a.id));
    assert.equal(s.use(b.id), undefined);
    assert.ok(s.use(c.id));
  });

  it('sweeps expired sessions and ends one on sign-out', () => {
    const { s, advance } = store({ idleMs: 1000 });
    const a = s.create('a', 'token');
    s.create('b', 'token');
    s.end(a.id);
    assert.equal(s.use(a.id), undefined);
    advance(2000);
    s.sweep();
    assert.equal(s.size, 0);
  });
});
