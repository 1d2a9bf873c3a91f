import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { fixedCredentials, KubeClient } from '@chaperone/shared/kube';
import { testPki } from '../test-https.ts';
import { runInformer } from './informer.ts';

interface Obj {
  metadata: { name: string; resourceVersion: string };
}

// The API server's typed errors and watch framing are tested with the client in shared/src/kube/.
describe('informer against a fake API server', () => {
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
      credentials: fixedCredentials({ token: 'tok' }),
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
    await client.close();
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
});
