/**
 * Diagnostic reference for the sidecar benchmark: the thinnest Node proxy with
 * the same building blocks as the sidecar (node:https server, undici Pool
 * upstream, stream pipeline), with no policy, masking, audit or metrics. Its
 * CPU per request is the floor the sidecar's platform choices put under it.
 *
 *   node bench/src/sidecar-passthrough.ts <port> <cert> <key> <upstream> <ca-file> <token> [h1|h2]
 *
 * `h2` (the default, as in undici 8) lets undici negotiate HTTP/2 with the API
 * server through ALPN; `h1` pins HTTP/1.1 keep-alive connections (allowH2: false).
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { pipeline } from 'node:stream/promises';
import { type Dispatcher, Pool } from 'undici';

const [portArg, certFile, keyFile, upstreamUrl, caFile, token, protocol = 'h2'] = process.argv.slice(2);
if (!portArg || !certFile || !keyFile || !upstreamUrl || !caFile || !token) {
  process.stderr.write('usage: sidecar-passthrough.ts <port> <cert> <key> <upstream> <ca-file> <token>\n');
  process.exit(2);
}
const pool = new Pool(upstreamUrl, {
  connect: { ca: readFileSync(caFile, 'utf8'), servername: 'kubernetes' },
  connections: null,
  pipelining: 1,
  allowH2: protocol !== 'h1',
  keepAliveTimeout: 30_000,
});
const authorization = `Bearer ${token}`;
const HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'host',
  'authorization',
  'upgrade',
  'te',
  'trailer',
]);

const server = createServer(
  { cert: readFileSync(certFile), key: readFileSync(keyFile) },
  async (req, res) => {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
    headers.authorization = authorization;
    try {
      const up = await pool.request({
        path: req.url ?? '/',
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        headers,
      });
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers))
        if (v !== undefined && k !== 'connection' && k !== 'keep-alive' && k !== 'transfer-encoding')
          out[k] = v;
      res.writeHead(up.statusCode, out);
      await pipeline(up.body, res).catch(() => {});
    } catch {
      res.writeHead(502).end();
    }
  },
);
server.keepAliveTimeout = 65_000;
server.listen(Number(portArg), '127.0.0.1');
process.once('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void pool.close();
});
