import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { APPROVALS_PATH, INGEST_PATH } from '@chaperone/shared';
import { attachHttpEntry, type HttpEntry } from './http-entry.ts';
import { memoryLogger } from './testing/test-harness.ts';

/** Sends an upgrade request and resolves with the status line, or 'held' when the server keeps the socket. */
function upgrade(port: number, target = INGEST_PATH): Promise<{ status: string; close: () => void }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () =>
      s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`),
    );
    const close = () => s.destroy();
    s.once('data', (d: Buffer) =>
      resolve({ status: d.toString('latin1').split('\r\n')[0] as string, close }),
    );
    s.on('error', () => {});
    held.push(() => resolve({ status: 'held', close }));
  });
}
let held: (() => void)[] = [];

describe('http entry', () => {
  let server: Server;
  let entry: HttpEntry;
  afterEach(async () => {
    entry.destroyAll();
    await new Promise((r) => server.close(r));
  });

  async function start(
    limits: { total: number; perAddress: number },
    approvalLimits = { total: 100, perAddress: 100 },
  ): Promise<{ port: number; sockets: Duplex[]; approvals: Duplex[] }> {
    held = [];
    const sockets: Duplex[] = [];
    const approvals: Duplex[] = [];
    /** Stands for a handler still verifying the token: the socket is kept open. */
    const keep = (into: Duplex[]) => (_req: unknown, socket: Duplex) => {
      into.push(socket);
      socket.on('end', () => socket.end()); // as ws does when the client closes
      socket.on('error', () => {});
      for (const h of held.splice(0)) h();
    };
    server = createServer();
    entry = attachHttpEntry(server, {
      api: async (_req, res) => void res.end('ok'),
      ingest: {
        upgrade: keep(sockets),
        maxIngestConnections: limits.total,
        maxIngestConnectionsPerAddress: limits.perAddress,
      },
      approvals: {
        upgrade: keep(approvals),
        maxApprovalConnections: approvalLimits.total,
        maxApprovalConnectionsPerAddress: approvalLimits.perAddress,
      },
      logger: memoryLogger([]),
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as AddressInfo).port, sockets, approvals };
  }

  // Fails if admit() is removed from the upgrade path (every upgrade is then held): tried.
  it('bounds ingest connections per address (429) and in all (503), and frees a slot on close', async () => {
    const { port } = await start({ total: 100, perAddress: 2 });
    const a = await upgrade(port);
    const b = await upgrade(port);
    assert.deepEqual([a.status, b.status], ['held', 'held']);
    const c = await upgrade(port);
    assert.equal(c.status, 'HTTP/1.1 429 Too Many Requests');
    a.close();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await upgrade(port)).status, 'held');
    b.close();
  });

  it('refuses past the total with 503, and a bad target with 400, without counting them', async () => {
    const { port } = await start({ total: 1, perAddress: 5 });
    assert.equal((await upgrade(port, 'http://[')).status, 'HTTP/1.1 400 Bad Request');
    assert.equal((await upgrade(port, '/elsewhere')).status, 'HTTP/1.1 404 Not Found');
    assert.equal((await upgrade(port)).status, 'held');
    assert.equal((await upgrade(port)).status, 'HTTP/1.1 503 Service Unavailable');
  });

  // Fails if the approvals path skips admission (all 40 are then handed over): tried.
  it('bounds approval upgrades per address before they are handed over, apart from ingest', async () => {
    const { port, approvals } = await start({ total: 100, perAddress: 1 }, { total: 6, perAddress: 3 });
    const many = [];
    for (let i = 0; i < 40; i++) many.push(await upgrade(port, APPROVALS_PATH));
    const tally = (xs: { status: string }[]) =>
      xs.reduce<Record<string, number>>((m, x) => {
        m[x.status] = (m[x.status] ?? 0) + 1;
        return m;
      }, {});
    assert.deepEqual(tally(many), { held: 3, 'HTTP/1.1 429 Too Many Requests': 37 });
    assert.equal(approvals.length, 3);
    assert.equal((await upgrade(port)).status, 'held', 'the ingest budget is separate');
    for (const x of many) x.close();
    await new Promise((r) => setTimeout(r, 50));
    const after = [];
    for (let i = 0; i < 3; i++) after.push(await upgrade(port, APPROVALS_PATH));
    assert.deepEqual(tally(after), { held: 3 });
  });
});
