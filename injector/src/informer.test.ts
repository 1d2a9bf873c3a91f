import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { runInformer } from './informer.ts';
import { KubeApiError, KubeClient } from './kube-client.ts';
import { testPki } from './test-https.ts';

interface Obj {
  metadata: { name: string; resourceVersion: string };
}

describe('KubeClient + informer against a fake API server', () => {
  it('lists, streams watch events split across chunks, relists on 410, resumes from the last version', async () => {
    const pki = testPki();
    const leaf = pki.leaf();
    const seen: string[] = [];
    let lists = 0;
    let watches = 0;
    const server = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
      const url = new URL(req.url ?? '/', 'https://x');
      seen.push(
        `${req.method} ${url.pathname}?${url.searchParams.toString()} auth=${req.headers.authorization}`,
      );
      if (url.searchParams.get('watch') !== 'true') {
        lists++;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            metadata: { resourceVersion: `${lists}0` },
            items: [{ metadata: { name: `listed-${lists}`, resourceVersion: `${lists}0` } }],
          }),
        );
        return;
      }
      watches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      if (watches === 1) {
        const events = [
          JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a', resourceVersion: '11' } } }),
          JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '12' } } }),
          JSON.stringify({ type: 'MODIFIED', object: { metadata: { name: 'a', resourceVersion: '13' } } }),
        ].join('\n');
        // Split the stream at awkward places.
        const bytes = Buffer.from(`${events}\n`);
        let i = 0;
        const step = () => {
          if (i >= bytes.length) {
            res.end();
            return;
          }
          res.write(bytes.subarray(i, i + 7));
          i += 7;
          setImmediate(step);
        };
        step();
      } else if (watches === 2) {
        res.end(
          `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, message: 'too old' } })}\n`,
        );
      } else {
        res.write(
          `${JSON.stringify({ type: 'DELETED', object: { metadata: { name: 'b', resourceVersion: '21' } } })}\n`,
        );
        // keep open until the client aborts
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const client = new KubeClient({
      server: `https://127.0.0.1:${port}`,
      ca: pki.ca.cert,
      token: () => 'tok',
      source: 'test',
    });
    const stop = new AbortController();
    const syncs: string[][] = [];
    const events: string[] = [];
    const done = runInformer<Obj>({
      client,
      path: '/api/v1/namespaces',
      name: 'test',
      signal: stop.signal,
      onSync: (items) => syncs.push(items.map((i) => i.metadata.name)),
      onEvent: (type, o) => {
        events.push(`${type} ${o.metadata.name}`);
        if (type === 'DELETED') stop.abort();
      },
    });
    await done;
    client.close();
    server.closeAllConnections();
    server.close();
    assert.deepEqual(syncs, [['listed-1'], ['listed-2']]);
    assert.deepEqual(events, ['ADDED a', 'MODIFIED a', 'DELETED b']);
    const watchLines = seen.filter((l) => l.includes('watch=true'));
    assert.match(watchLines[0] ?? '', /resourceVersion=10/);
    assert.match(
      watchLines[1] ?? '',
      /resourceVersion=13/,
      'resumes after the last event (bookmarks included)',
    );
    assert.match(watchLines[2] ?? '', /resourceVersion=20/, 'relisted after 410 Gone');
    assert.ok(seen.every((l) => l.endsWith('auth=Bearer tok')));
  });

  it('maps API errors to typed errors with the Status message', async () => {
    const pki = testPki();
    const leaf = pki.leaf();
    const server = createServer({ cert: leaf.cert, key: leaf.key }, (_req, res) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', reason: 'Forbidden', message: 'secrets is forbidden' }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = new KubeClient({
      server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
      ca: pki.ca.cert,
      source: 'test',
    });
    await assert.rejects(client.get('/api/v1/secrets'), (err: unknown) => {
      assert.ok(err instanceof KubeApiError);
      assert.equal(err.status, 403);
      assert.equal(err.code, 'forbidden');
      assert.match(err.message, /GET \/api\/v1\/secrets: HTTP 403: secrets is forbidden/);
      return true;
    });
    client.close();
    server.close();
  });
});
