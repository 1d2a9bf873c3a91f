// The upstream pool against an in-process HTTPS server standing in for the
// API server, to stage what a real one rarely does on demand: silence,
// closing keep-alive connections, refusing connections. The real API server
// is exercised in e2e/.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { createCA, issueCertificate } from '@chaperone/shared/tls';
import type { ResponseHead } from './response-decoder.ts';
import { type UpstreamError, UpstreamPool, type UpstreamRequest } from './upstream-pool.ts';

describe('upstream pool', () => {
  const ca = createCA({ commonName: 'test' });
  const leaf = issueCertificate({ ca, commonName: 'api', ipAddresses: ['127.0.0.1'] });
  let route: (req: IncomingMessage, res: ServerResponse) => void = (_q, r) => r.end('ok');
  const server = createServer({ cert: leaf.cert, key: leaf.key }, (q, r) => route(q, r));
  const sockets = new Set<Socket>();
  let connections = 0;
  let port = 0;

  before(async () => {
    server.on('secureConnection', (s: Socket) => {
      connections++;
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  function pool(p = port) {
    return new UpstreamPool({ host: '127.0.0.1', port: p, ca: ca.cert });
  }

  function get(
    pl: UpstreamPool,
    path: string,
    opts: Partial<UpstreamRequest> = {},
  ): Promise<{ head: ResponseHead; body: string }> {
    return new Promise((resolve, reject) => {
      let head: ResponseHead | undefined;
      const chunks: Buffer[] = [];
      pl.request(
        {
          method: 'GET',
          head: `GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`,
          headersTimeoutMs: 2000,
          bodyTimeoutMs: 2000,
          ...opts,
        },
        {
          onHead: (h) => {
            head = h;
          },
          onData: (d) => {
            chunks.push(Buffer.from(d));
            return true;
          },
          onEnd: () => resolve({ head: head as ResponseHead, body: Buffer.concat(chunks).toString() }),
          onError: (e: UpstreamError) => reject(e),
        },
      );
    });
  }

  it('reuses one keep-alive connection for sequential requests, chunked or not', async () => {
    route = (q, r) => {
      if (q.url === '/chunked') {
        r.write('a');
        r.end('b');
      } else r.end('plain');
    };
    const before = connections;
    const pl = pool();
    try {
      assert.equal((await get(pl, '/')).body, 'plain');
      assert.equal((await get(pl, '/chunked')).body, 'ab');
      assert.equal((await get(pl, '/')).body, 'plain');
      assert.equal(connections - before, 1);
    } finally {
      await pl.close();
    }
  });

  it('sets no timer when idle: deadlines are watched while requests are out, then only the idle expiry', async () => {
    route = (_q, r) => r.end('ok');
    const pl = new UpstreamPool({ host: '127.0.0.1', port, ca: ca.cert, idleTimeoutMs: 300 });
    try {
      assert.equal(pl.watching, 'nothing', 'a new pool sets no timer');
      await get(pl, '/');
      assert.equal(pl.size, 1);
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(pl.watching, 'idle', 'one timeout for the idle connection, no interval');
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(pl.size, 0, 'the idle connection was closed when it expired');
      assert.equal(pl.watching, 'nothing');
      // A request after that watches deadlines again: a silent server still times out.
      route = () => {};
      await assert.rejects(
        get(pl, '/', { headersTimeoutMs: 150 }),
        (e: UpstreamError) => e.kind === 'headers-timeout',
      );
    } finally {
      await pl.close();
    }
    assert.equal(pl.watching, 'nothing');
  });

  it('wakes for no open watch: a response with no body deadline sets no timer once its head is in; its connection still expires when idle', async () => {
    let finish: () => void = () => {};
    route = (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/json' });
      r.write('{"type":"ADDED"}\n');
      finish = () => r.end();
    };
    const pl = new UpstreamPool({ host: '127.0.0.1', port, ca: ca.cert, idleTimeoutMs: 300 });
    try {
      const watch = get(pl, '/watch', { bodyTimeoutMs: 0 });
      await new Promise((r) => setTimeout(r, 250));
      assert.equal(pl.watching, 'nothing', 'the watch has no deadline to check');
      finish();
      assert.equal((await watch).body, '{"type":"ADDED"}\n');
      // The watch ended on a keep-alive connection: its idle expiry is still watched.
      assert.equal(pl.size, 1);
      assert.equal(pl.watching, 'idle');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(pl.size, 0, 'the connection was closed once idle for longer than idleTimeoutMs');
    } finally {
      await pl.close();
    }
  });

  it('retries a GET once when the server closed the idle connection', async () => {
    route = (_q, r) => r.end('fresh');
    const pl = pool();
    try {
      for (const wait of [0, 20]) {
        await get(pl, '/');
        // The server drops every connection while the pool holds one idle: at once
        // (the request goes out on the dead connection and is retried) or noticed first.
        for (const s of sockets) s.destroy();
        if (wait) await new Promise((r) => setTimeout(r, wait));
        assert.equal((await get(pl, '/')).body, 'fresh');
      }
    } finally {
      await pl.close();
    }
  });

  it('fails with headers-timeout when the server says nothing, and does not reuse that connection', async () => {
    route = () => {}; // never answers
    const pl = pool();
    try {
      await assert.rejects(get(pl, '/', { headersTimeoutMs: 150 }), (e: UpstreamError) => {
        assert.equal(e.kind, 'headers-timeout');
        return true;
      });
      assert.equal(pl.size, 0);
    } finally {
      await pl.close();
    }
  });

  it('fails with body-timeout when a body stalls, but lets a watch (no body timeout) wait', async () => {
    route = (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/json' });
      r.write('{');
      setTimeout(() => r.end('}'), 400);
    };
    const pl = pool();
    try {
      await assert.rejects(
        get(pl, '/', { bodyTimeoutMs: 150 }),
        (e: UpstreamError) => e.kind === 'body-timeout',
      );
      assert.equal((await get(pl, '/', { bodyTimeoutMs: 0 })).body, '{}');
    } finally {
      await pl.close();
    }
  });

  it('reports an unreachable server as unreachable', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const closedPort = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const pl = pool(closedPort);
    try {
      await assert.rejects(get(pl, '/'), (e: UpstreamError) => {
        assert.equal(e.kind, 'unreachable');
        assert.equal(e.code, 'ECONNREFUSED');
        return true;
      });
    } finally {
      await pl.close();
    }
  });

  it('pauses the connection while the sink is full and resumes on request', async () => {
    const big = 'x'.repeat(256 * 1024);
    route = (_q, r) => r.end(big);
    const pl = pool();
    try {
      let got = 0;
      let paused = 0;
      // Set while the sink is full (between a false from onData and resume()): no data may arrive then.
      let full = false;
      let whileFull = 0;
      await new Promise<void>((resolve, reject) => {
        const x = pl.request(
          {
            method: 'GET',
            head: 'GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n',
            headersTimeoutMs: 2000,
            bodyTimeoutMs: 2000,
          },
          {
            onHead: () => {},
            onData: (d) => {
              if (full) whileFull++;
              got += d.length;
              paused++;
              full = true;
              setTimeout(() => {
                full = false;
                x.resume();
              }, 1);
              return false;
            },
            onEnd: () => resolve(),
            onError: reject,
          },
        );
      });
      assert.equal(got, big.length);
      assert.ok(paused > 1);
      assert.equal(whileFull, 0, 'data arrived while the sink was full');
    } finally {
      await pl.close();
    }
  });

  it('presents the client certificate current at each new connection', async () => {
    const client = (commonName: string) => issueCertificate({ ca, commonName, server: false, client: true });
    const certs = [client('first'), client('second')];
    let current = certs[0];
    const seen: string[] = [];
    const tls = createTlsServer(
      { cert: leaf.cert, key: leaf.key, ca: ca.cert, requestCert: true, rejectUnauthorized: false },
      (s: TLSSocket) => {
        seen.push(String(s.getPeerCertificate().subject?.CN));
        s.end();
      },
    );
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    const pl = new UpstreamPool({
      host: '127.0.0.1',
      port: (tls.address() as AddressInfo).port,
      ca: ca.cert,
      clientCertificate: () => current,
    });
    const connectOnce = () =>
      new Promise<void>((resolve, reject) => {
        const socket = pl.openSocket();
        socket.on('data', () => {});
        socket.once('close', () => resolve());
        socket.once('error', reject);
      });
    try {
      await connectOnce();
      await connectOnce();
      current = certs[1];
      await connectOnce();
      current = undefined;
      await connectOnce();
      assert.deepEqual(seen, ['first', 'first', 'second', 'undefined']);
    } finally {
      await pl.close();
      await new Promise((r) => tls.close(r));
    }
  });
});
