// KubeClient.watch against a local HTTPS server that streams watch events the
// way the API server frames them (a test double, so chunk boundaries and
// failures can be placed exactly; e2e/ watches a real kube-apiserver).
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, describe, it } from 'node:test';
import { ChaperoneError } from '../errors.ts';
import { KubeApiError } from './api-error.ts';
import { KubeClient } from './client.ts';
import { fixedCredentials } from './connection.ts';
import { sendJson, startTestApiServer, type TestApiServer } from './test-server.ts';
import type { WatchEvent } from './watch-decoder.ts';

interface Obj {
  metadata: { name?: string; resourceVersion: string };
}

const servers: TestApiServer[] = [];
const clients: KubeClient[] = [];
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
});

async function setup(handler: (res: ServerResponse) => void) {
  const s = await startTestApiServer((_r, res) => handler(res));
  servers.push(s);
  const c = new KubeClient({
    server: s.url,
    ca: s.ca,
    credentials: fixedCredentials({ token: 'tok' }),
    source: 'test',
  });
  clients.push(c);
  return { s, c };
}

const line = (type: string, name: string | undefined, rv: string) =>
  `${JSON.stringify({ type, object: { metadata: { ...(name ? { name } : {}), resourceVersion: rv } } })}\n`;

/** Writes `text` seven bytes at a time, each in its own chunk. */
function dribble(res: ServerResponse, text: string, end: boolean): void {
  const bytes = Buffer.from(text);
  let i = 0;
  const step = () => {
    if (i >= bytes.length) {
      if (end) res.end();
      return;
    }
    res.write(bytes.subarray(i, i + 7));
    i += 7;
    setImmediate(step);
  };
  step();
}

describe('KubeClient.watch', () => {
  it('streams events split across chunks, bookmarks and ERROR events included, until the server ends', async () => {
    const { s, c } = await setup((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      dribble(
        res,
        line('ADDED', 'a', '11') +
          line('BOOKMARK', undefined, '12') +
          line('MODIFIED', 'ä-ü', '13') +
          `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } })}\n`,
        true,
      );
    });
    const events: WatchEvent<Obj>[] = [];
    await c.watch<Obj>(
      '/api/v1/namespaces',
      { resourceVersion: '10', allowWatchBookmarks: true, timeoutSeconds: 300 },
      (e) => events.push(e),
      new AbortController().signal,
    );
    assert.deepEqual(
      events.map(
        (e) => `${e.type} ${e.object.metadata?.name ?? ''} ${e.object.metadata?.resourceVersion ?? ''}`,
      ),
      ['ADDED a 11', 'BOOKMARK  12', 'MODIFIED ä-ü 13', 'ERROR  '],
    );
    assert.equal((events[3]?.object as unknown as { code: number } | undefined)?.code, 410);
    const q = s.seen[0]?.query;
    assert.equal(q?.get('watch'), 'true');
    assert.equal(q?.get('resourceVersion'), '10');
    assert.equal(q?.get('allowWatchBookmarks'), 'true');
    assert.equal(s.seen[0]?.authorization, 'Bearer tok');
  });

  it('resolves when the signal aborts a watch that is still open', async () => {
    const { c } = await setup((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(line('ADDED', 'a', '1')); // and keeps the stream open
    });
    const stop = new AbortController();
    const seen: string[] = [];
    await c.watch<Obj>(
      '/api/v1/pods',
      {},
      (e) => {
        seen.push(e.type);
        stop.abort();
      },
      stop.signal,
    );
    assert.deepEqual(seen, ['ADDED']);
    await c.watch('/api/v1/pods', {}, () => assert.fail('no event after abort'), stop.signal);
  });

  it('rejects with the error an event handler throws, and stops reading', async () => {
    const { c } = await setup((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(line('ADDED', 'a', '1') + line('ADDED', 'b', '2'));
    });
    class Gone extends Error {}
    const seen: string[] = [];
    await assert.rejects(
      c.watch<Obj>(
        '/api/v1/pods',
        {},
        (e) => {
          seen.push(e.object.metadata.name ?? '');
          throw new Gone('stop here');
        },
        new AbortController().signal,
      ),
      // The handler's own error, not a wrapped one (the informer relists on its own Gone).
      (err: unknown) => err instanceof Gone,
    );
    assert.deepEqual(seen, ['a']);
  });

  it('rejects with a KubeApiError when the watch is refused', async () => {
    const { c } = await setup((res) =>
      sendJson(res, 403, { kind: 'Status', reason: 'Forbidden', message: 'cannot watch pods', code: 403 }),
    );
    await assert.rejects(
      c.watch('/api/v1/pods', {}, () => {}, new AbortController().signal),
      (err: unknown) =>
        err instanceof KubeApiError &&
        err.status === 403 &&
        /WATCH \/api\/v1\/pods: HTTP 403: cannot watch pods/.test(err.message),
    );
  });

  it('rejects when the connection breaks mid-stream or the stream is not a watch', async () => {
    const { c } = await setup((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(line('ADDED', 'a', '1'));
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const seen: string[] = [];
    await assert.rejects(
      c.watch<Obj>('/api/v1/pods', {}, (e) => seen.push(e.type), new AbortController().signal),
      (err: unknown) =>
        err instanceof ChaperoneError &&
        err.code === 'unavailable' &&
        /^WATCH \/api\/v1\/pods: /.test(err.message),
    );
    assert.deepEqual(seen, ['ADDED']);
    const { c: junk } = await setup((res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>\n');
    });
    await assert.rejects(
      junk.watch('/api/v1/pods', {}, () => {}, new AbortController().signal),
      (err: unknown) => err instanceof ChaperoneError && err.code === 'validation_failed',
    );
  });
});
