import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { waitForSidecar } from './wait-for-sidecar.ts';

describe('wait-for-sidecar', () => {
  it('returns once the files are written and the port listens', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-sa-'));
    const server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const waiting = waitForSidecar({ port, dir, timeoutMs: 10_000, intervalMs: 20 });
    let done = false;
    waiting.then(() => {
      done = true;
    });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(done, false, 'not before the files exist');
    for (const f of ['ca.crt', 'token', 'namespace']) writeFileSync(join(dir, f), 'x');
    await waiting;
    server.close();
  });

  it('gives up with a message naming what is missing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-sa-'));
    await assert.rejects(
      waitForSidecar({ port: 1, dir, timeoutMs: 50, intervalMs: 10 }),
      /not ready after 50 ms: .*ca\.crt does not exist yet/,
    );
    for (const f of ['ca.crt', 'token', 'namespace']) writeFileSync(join(dir, f), 'x');
    await assert.rejects(
      waitForSidecar({ port: 1, dir, timeoutMs: 50, intervalMs: 10 }),
      /nothing listens on 127\.0\.0\.1:1/,
    );
  });
});
