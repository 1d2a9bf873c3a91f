import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Guard, Handler, KubeRequestContext } from './context.ts';
import { lazyGuard } from './lazy-guard.ts';

/** Only what these tests read: which request it is. */
const request = (session: boolean) => ({ session }) as unknown as KubeRequestContext;
const isSession = (ctx: KubeRequestContext) => (ctx as unknown as { session: boolean }).session;

function setup(load: () => Promise<Guard>) {
  const seen: string[] = [];
  const next: Handler = (ctx) => {
    seen.push(isSession(ctx) ? 'next:session' : 'next:other');
  };
  return { seen, handler: lazyGuard(isSession, load)(next) };
}

const guard =
  (seen: string[]): Guard =>
  (next) =>
  (ctx) => {
    seen.push(isSession(ctx) ? 'guard:session' : 'guard:other');
    if (!isSession(ctx)) return next(ctx);
  };

describe('lazyGuard', () => {
  it('does not load the guard for requests it does not want, and passes them on', async () => {
    let loads = 0;
    const { seen, handler } = setup(async () => {
      loads++;
      return guard(seen);
    });
    await handler(request(false));
    await handler(request(false));
    assert.equal(loads, 0);
    assert.deepEqual(seen, ['next:other', 'next:other']);
  });

  it('loads the guard once, at the first request it wants, and sends every later request through it', async () => {
    let loads = 0;
    const { seen, handler } = setup(async () => {
      loads++;
      return guard(seen);
    });
    await Promise.all([handler(request(true)), handler(request(true))]);
    await handler(request(false));
    assert.equal(loads, 1);
    assert.deepEqual(seen, ['guard:session', 'guard:session', 'guard:other', 'next:other']);
  });

  it('a load that fails fails that request and is tried again at the next', async () => {
    let loads = 0;
    const { seen, handler } = setup(async () => {
      loads++;
      if (loads === 1) throw new Error('module not found');
      return guard(seen);
    });
    await assert.rejects(async () => handler(request(true)), /module not found/);
    await handler(request(true));
    assert.equal(loads, 2);
    assert.deepEqual(seen, ['guard:session']);
  });
});
