import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { compose, type KubeRequestContext } from '../context.ts';
import { type KubeServers, startKubeServers } from '../server.ts';
import { readRequest, UNREADABLE_RULE } from './request-reading.ts';

/** One request on a fresh connection; the whole response text. */
function send(port: number, requestLine: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (d) => {
      text += d.toString('latin1');
    });
    s.on('close', () => resolve(text));
    s.on('error', reject);
    s.write(`${requestLine}\r\nhost: x\r\nconnection: close\r\n\r\n`);
  });
}

describe('request-reading guard', () => {
  let servers: KubeServers;
  const reached: KubeRequestContext[] = [];
  const seen: KubeRequestContext[] = [];
  before(async () => {
    servers = await startKubeServers({
      hosts: ['127.0.0.1'],
      port: 0,
      handler: compose(
        [
          (next) => (ctx) => {
            seen.push(ctx);
            return next(ctx);
          },
          readRequest(),
        ],
        (ctx) => {
          reached.push(ctx);
          ctx.res.end('forwarded');
        },
      ),
    });
  });
  after(() => servers.close());

  it('passes a readable request on with its RequestInfo', async () => {
    const text = await send(servers.port, 'GET /api/v1/namespaces/a/secrets?watch=yes HTTP/1.1');
    assert.match(text, /forwarded$/);
    const ctx = reached.at(-1);
    assert.equal(ctx?.info?.verb, 'watch');
    assert.equal(ctx?.info?.namespace, 'a');
  });

  for (const [line, code, names] of [
    ['GET /api/v1/namespaces/a/secrets%2Fdb HTTP/1.1', 400, /encoded "\/"/],
    ['GET /api/v1/namespaces//secrets HTTP/1.1', 400, /empty segment/],
    ['GET /api/v1/namespaces/a/secrets?a=1;b=2 HTTP/1.1', 400, /";"/],
    ['get /api/v1/pods HTTP/1.1', 405, /method "get"/],
    ['OPTIONS * HTTP/1.1', 405, /method "OPTIONS"/],
  ] as const) {
    it(`answers ${line} itself with a ${code} Status, never passing it on`, async () => {
      const before = reached.length;
      const text = await send(servers.port, line);
      assert.equal(reached.length, before);
      assert.match(text, new RegExp(`^HTTP/1\\.1 ${code} `));
      if (code === 405) assert.match(text, /\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE\r\n/);
      const status = JSON.parse(text.split('\r\n\r\n')[1] as string) as Record<string, unknown>;
      assert.equal(status.kind, 'Status');
      assert.equal(status.code, code);
      assert.equal(status.reason, code === 405 ? 'MethodNotAllowed' : 'BadRequest');
      assert.match(String(status.message), names);
      assert.match(String(status.message), /^chaperone: /);
      // Recorded as a built-in denial, so its event and the blocked metrics name the rule.
      assert.equal(seen.at(-1)?.decision?.rule, UNREADABLE_RULE);
      assert.equal(seen.at(-1)?.decision?.action, 'deny');
    });
  }
});
