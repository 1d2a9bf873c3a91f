import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connect, createServer } from 'node:tls';
import { createLocalTls } from './local-tls-process.ts';

describe('local TLS (made by a child process)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'local-tls-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serves TLS that verifies against the local CA for 127.0.0.1, and keeps the CA across restarts', async () => {
    const first = await createLocalTls(join(dir, 'tls'), 'agent-0');
    assert.ok(first.leafNotAfter.getTime() > Date.now());
    const server = createServer({ cert: first.leaf.cert, key: first.leaf.key }, (s) => s.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      const text = await new Promise<string>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port, ca: first.ca.cert }, () => {});
        let got = '';
        s.on('data', (d) => {
          got += d;
        });
        s.on('end', () => resolve(got));
        s.on('error', reject);
      });
      assert.equal(text, 'ok');
    } finally {
      server.close();
    }
    const second = await createLocalTls(join(dir, 'tls'), 'agent-0');
    assert.equal(second.ca.cert, first.ca.cert);
    assert.notEqual(second.leaf.cert, first.leaf.cert);
  });
});
