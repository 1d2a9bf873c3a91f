import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type KubeServers, startKubeServers } from '../server.ts';

/** Sends raw bytes, collects everything until the server closes or `until` matches. */
function exchange(port: number, bytes: string, until?: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve(text);
    }, 2000);
    s.on('data', (d) => {
      text += d.toString('latin1');
      if (until?.test(text)) {
        clearTimeout(timer);
        s.destroy();
        resolve(text);
      }
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    s.on('error', reject);
    s.write(bytes);
  });
}

describe('agent connection (HTTP/1.1 on a raw socket)', () => {
  let servers: KubeServers;
  before(async () => {
    servers = await startKubeServers({
      hosts: ['127.0.0.1'],
      port: 0,
      handler: async (ctx) => {
        const { req, res } = ctx;
        if (req.url === '/echo') {
          const body = await req.body(1024).catch((e: Error) => Buffer.from(`error: ${e.message}`));
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
          res.end(body);
          return;
        }
        if (req.url === '/slow' || req.url === '/slower') {
          setTimeout(() => res.end('slow'), req.url === '/slow' ? 50 : 1000);
          return;
        }
        if (req.url === '/quiet-stream') {
          // A watch with no events yet: the head goes out at once, the body much later.
          res.writeHead(200, { 'content-type': 'application/json' });
          res.flushHeaders();
          setTimeout(() => res.end('{}'), 1500);
          return;
        }
        if (req.url === '/stream') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('one,');
          setTimeout(() => res.end('two'), 5);
          return;
        }
        res.end(`${req.method} ${req.url}`);
      },
    });
  });
  after(() => servers.close());

  it('answers pipelined requests in order on one connection', async () => {
    const text = await exchange(
      servers.port,
      'GET /a HTTP/1.1\r\nhost: x\r\n\r\nPOST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhelloGET /c HTTP/1.1\r\nhost: x\r\n\r\n',
      /GET \/c$/,
    );
    const bodies = text
      .split(/HTTP\/1\.1 200 OK\r\n/)
      .slice(1)
      .map((r) => r.split('\r\n\r\n')[1]);
    assert.deepEqual(bodies, ['GET /a', 'hello', 'GET /c']);
  });

  it('streams with chunked coding when the length is unknown', async () => {
    const text = await exchange(servers.port, 'GET /stream HTTP/1.1\r\nhost: x\r\n\r\n', /0\r\n\r\n$/);
    assert.match(text, /transfer-encoding: chunked/);
    assert.match(text, /\r\n\r\n4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n$/);
  });

  it('sends the head of a stream before its first bytes when asked to', async () => {
    const text = await exchange(servers.port, 'GET /quiet-stream HTTP/1.1\r\nhost: x\r\n\r\n', /\r\n\r\n/);
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /transfer-encoding: chunked\r\n/);
    assert.doesNotMatch(text, /\{\}/, 'the head came alone, before the body');
  });

  it('decodes a chunked request body and sends 100 Continue when asked', async () => {
    const text = await exchange(
      servers.port,
      'POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n',
      /abcde$/,
    );
    assert.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK/);
    assert.match(text, /abcde$/);
  });

  it('answers a malformed request with a 400 Status and closes, never calling the handler', async () => {
    for (const bad of [
      'GET /a HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n',
      'GET /a b HTTP/1.1\r\nhost: x\r\n\r\n',
      'GET /a HTTP/1.1\r\nhost: x\r\n folded\r\n\r\n',
      'GET /a HTTP/1.1\nhost: x\n\n',
    ]) {
      const text = await exchange(servers.port, bad);
      assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/, bad);
      assert.match(text, /connection: close/);
      const body = JSON.parse(text.split('\r\n\r\n')[1] as string) as { kind: string; message: string };
      assert.equal(body.kind, 'Status');
      assert.match(body.message, /^chaperone: /);
    }
  });

  it('answers an oversized head with 431', async () => {
    const text = await exchange(
      servers.port,
      `GET /a HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(70_000)}\r\n\r\n`,
    );
    assert.match(text, /^HTTP\/1\.1 431 /);
  });

  it('closes after a response when the client asked for it', async () => {
    const text = await exchange(servers.port, 'GET /a HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    assert.match(text, /connection: close/);
    assert.match(text, /GET \/a$/);
  });

  it('answers more pipelined requests than the bound with an error after the current response, and closes', async () => {
    let bytes = 'GET /slow HTTP/1.1\r\nhost: x\r\n\r\n';
    for (let i = 0; i < 40; i++) bytes += `GET /n${i} HTTP/1.1\r\nhost: x\r\n\r\n`;
    const text = await exchange(servers.port, bytes);
    const responses = text.split(/(?=HTTP\/1\.1 \d{3} )/);
    assert.equal(responses.length, 2, text);
    assert.match(responses[0] as string, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nslow$/);
    assert.match(responses[1] as string, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(responses[1] as string, /connection: close/);
    const status = JSON.parse((responses[1] as string).split('\r\n\r\n')[1] as string) as {
      kind: string;
      message: string;
    };
    assert.equal(status.kind, 'Status');
    assert.match(
      status.message,
      /more than 32 requests were sent on one connection ahead of their responses/,
    );
  });

  it('answers more pipelined bytes than the bound (bodies and heads) with an error, and closes', async () => {
    const body = 'b'.repeat(1_200_000);
    const text = await exchange(
      servers.port,
      // Long enough for the 1.2 MB behind it to arrive.
      `GET /slower HTTP/1.1\r\nhost: x\r\n\r\nPOST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
    const responses = text.split(/(?=HTTP\/1\.1 \d{3} )/);
    assert.equal(responses.length, 2, text.slice(0, 500));
    assert.match(responses[0] as string, /slow$/);
    assert.match(responses[1] as string, /^HTTP\/1\.1 400 /);
    assert.match(responses[1] as string, /more than 1048576 bytes of requests were sent on one connection/);
    // Heads count too: many requests with large heads, each within the head limit.
    const big = `x-big: ${'h'.repeat(60_000)}\r\n`;
    let heads = 'GET /slower HTTP/1.1\r\nhost: x\r\n\r\n';
    for (let i = 0; i < 20; i++) heads += `GET /n${i} HTTP/1.1\r\nhost: x\r\n${big}\r\n`;
    const text2 = await exchange(servers.port, heads);
    assert.match(text2, /more than 1048576 bytes of requests were sent/);
  });

  it('serves pipelined requests within the bound', async () => {
    let bytes = '';
    for (let i = 0; i < 20; i++) bytes += `GET /n${i} HTTP/1.1\r\nhost: x\r\n\r\n`;
    const text = await exchange(servers.port, bytes, /GET \/n19$/);
    assert.equal(text.match(/HTTP\/1\.1 200 OK/g)?.length, 20);
  });

  it('refuses a body over the handler limit with the limit in the error', async () => {
    const text = await exchange(
      servers.port,
      `POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2000\r\n\r\n${'z'.repeat(2000)}`,
      /error: .*$/,
    );
    assert.match(text, /error: the request body is larger than the limit of 1024 bytes/);
  });
});
